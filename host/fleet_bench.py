"""`airlora bench fleet`: the airtime of one fountain-coded broadcast to N local edges against unicast delivery.

N real edge processes (their own emulated channels at SNRs spread over a range, their own adapter folders) all
install the same signed adapter from one broadcast. Then each edge gets the same payload by today's unicast
(selective repeat, after a unicast sounding, as `airlora run` does), one after another. Figures: the broadcast's
airtime against the worst edge's unicast airtime alone and against the sum of all unicasts; again with a share
of each edge's packets erased at random (edge.erase_fraction). Soundings are left out of every figure.

The edges verify and install (probe logits checked) but do not evaluate (fleet.evaluate false): evaluating the
test split on N edges adds minutes of CPU and nothing to airtime; memory stays at one model per edge process.
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host.edge_process import EdgeProcess
from host.fleet import broadcast_tx, edge_config, local_fleet, write_edge_configs
from host.fountain_sender import FleetEdgeLink, FountainSender
from host.sender import Sender
from radio.backends.factory import make_backend
from radio.link import LinkSettings
from radio.transmitter import TX_POWER
from testbed import __version__
from testbed.config import TestbedConfig, validate
from testbed.control.client import ControlClient
from testbed.messages import Hello
from testbed.results import RunFolder

SOUNDING_BYTES = 4096
GOALS = {0.0: 1.25, 0.1: 1.35}  # the goals: broadcast airtime / worst edge's unicast airtime


def _fleet_cfg(cfg: TestbedConfig, snrs: list[float], erase: float) -> TestbedConfig:
    raw = cfg.model_dump(mode="json")
    raw["fleet"].update({"local_snr_db": snrs, "evaluate": False, "edges": []})
    raw["edge"]["erase_fraction"] = erase
    return validate(raw, source="bench fleet")


def run_scenario(cfg: TestbedConfig, payload: bytes, snrs: list[float], erase: float, folder: RunFolder,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """One scenario: start the edges, broadcast (apply), then unicast to each; the airtimes and per-edge rows."""
    cfg = _fleet_cfg(cfg, snrs, erase)
    edges = local_fleet(cfg, len(snrs))
    sub = folder.path / f"erase-{erase:g}"
    sub.mkdir()
    paths = write_edge_configs(cfg, edges, sub, local=True)
    hello = Hello(role="host", node_id="bench-host", software_version=__version__, capabilities=["send"])
    procs = {e.name: EdgeProcess(paths[e.name], sub / f"edge-{e.name}.log", e.name) for e in edges}
    clients = {e.name: ControlClient.from_config(cfg.control.model_copy(update={"endpoint": e.control_endpoint}),
                                                 hello) for e in edges}
    settings = LinkSettings.from_config(cfg.radio)
    fs = settings.sample_rate_hz
    tx = None
    try:
        for e in edges:
            procs[e.name].wait_ready(clients[e.name], cfg.run.edge_start_timeout_s)
        say(f"  {len(edges)} edges ready (erasures {erase:.0%}); broadcasting {len(payload)} bytes ...")
        tx = broadcast_tx(cfg, edges)
        links = [FleetEdgeLink(e.name, clients[e.name], (lambda p=procs[e.name]: not p.alive)) for e in edges]
        sender = FountainSender(links, tx, settings, "zmq", cfg.fleet, on_event=folder.event)
        base = secrets.randbits(24) << 8
        sender.deliver(secrets.token_bytes(SOUNDING_BYTES), base, cfg.run.burst_report_timeout_s, apply=False)
        t0 = time.monotonic()
        d = sender.deliver(payload, base + 1, cfg.run.delivery_timeout_s, apply=True, evaluate=False,
                           apply_timeout_s=cfg.run.apply_timeout_s)
        broadcast_wall = time.monotonic() - t0
        fleet_airtime = d.airtime_s(fs)
        say(f"  broadcast: {fleet_airtime:.2f} s airtime, {d.symbols_sent} symbols for K = {d.source_symbols}, "
            f"{sum(bool(e.apply and e.apply.installed) for e in d.edges.values())}/{len(edges)} installed; "
            "unicast to each edge ...")
        tx.close()
        tx = None
        rows = []
        for i, e in enumerate(edges):
            edge_cfg = validate(edge_config(cfg, e, local=True))
            utx = make_backend(edge_cfg.radio, edge_cfg.channel, TX_POWER, role="tx")
            try:
                unicast = Sender(clients[e.name], utx, settings, "zmq", edge_check=procs[e.name].check)
                unicast.deliver(secrets.token_bytes(SOUNDING_BYTES), base + 2 + 2 * i,
                                cfg.run.delivery_timeout_s, cfg.run.burst_report_timeout_s, apply=False)
                u = unicast.deliver(payload, base + 3 + 2 * i, cfg.run.delivery_timeout_s,
                                    cfg.run.burst_report_timeout_s, apply=False)
            finally:
                utx.close()
            state = d.edges[e.name]
            rows.append({"edge": e.name, "snr_db_set": snrs[i], "snr_db_measured": state.snr_db,
                         "symbols_received": state.received, "done_s": state.done_s,
                         "installed": bool(state.apply and state.apply.installed),
                         "unicast_airtime_s": u.airtime_s(fs), "unicast_mcs": u.mcs_per_burst[-1],
                         "unicast_packets_retransmitted": u.packets_retransmitted})
            say(f"    {e.name} ({snrs[i]:.1f} dB): unicast {rows[-1]['unicast_airtime_s']:.2f} s at "
                f"{rows[-1]['unicast_mcs']}, {u.packets_retransmitted} packets again")
        worst = min(rows, key=lambda r: r["snr_db_set"])
        unicast_sum = sum(r["unicast_airtime_s"] for r in rows)
        return {"erase_fraction": erase, "edges": rows, "fleet_airtime_s": fleet_airtime,
                "fleet_mcs_per_burst": d.mcs_per_burst, "fleet_symbols_sent": d.symbols_sent,
                "source_symbols": d.source_symbols, "fleet_overhead": d.symbols_sent / d.source_symbols,
                "all_installed": all(r["installed"] for r in rows), "broadcast_wall_s": round(broadcast_wall, 2),
                "worst_edge": worst["edge"], "worst_unicast_airtime_s": worst["unicast_airtime_s"],
                "max_unicast_airtime_s": max(r["unicast_airtime_s"] for r in rows),
                "sequential_unicast_airtime_s": unicast_sum,
                "vs_worst_unicast": fleet_airtime / worst["unicast_airtime_s"],
                "vs_sequential_unicast": fleet_airtime / unicast_sum, "goal_vs_worst": GOALS.get(erase),
                "edge_rss_mib": _rss_mib([p.proc.pid for p in procs.values()])}
    finally:
        if tx is not None:
            tx.close()
        for c in clients.values():
            c.close()
        for p in procs.values():
            p.stop()


def _rss_mib(pids: list[int]) -> dict[str, float]:
    """Resident memory of the edge processes (Linux /proc), mean and max in MiB."""
    sizes = []
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
            sizes.append(int(fields[0]) / 1024)
        except (OSError, IndexError, ValueError):
            continue
    return {"mean": round(statistics.fmean(sizes), 1), "max": round(max(sizes), 1)} if sizes else {}


def bench_fleet(cfg: TestbedConfig, payload: bytes, snrs: list[float], erasures: list[float],
                say: Callable[[str], None]) -> dict[str, Any]:
    """Every scenario (one per erasure share) on a fresh set of edges; the report."""
    folder = RunFolder(cfg.run.out_dir, name=f"bench-fleet-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        scenarios = []
        for erase in erasures:
            say(f"scenario: {len(snrs)} edges at {', '.join(f'{s:.1f}' for s in snrs)} dB, erasures {erase:.0%}")
            scenarios.append(run_scenario(cfg, payload, snrs, erase, folder, say))
    finally:
        folder.close()
    report = {"payload_bytes": len(payload), "snr_db": snrs, "mcs_rule": cfg.fleet.mcs_rule,
              "packet_payload_bytes": cfg.radio.packet_payload_bytes, "sample_rate_hz": cfg.radio.sample_rate_hz,
              "scenarios": scenarios, "run_dir": str(folder.path)}
    folder.write_json("bench_fleet.json", report)
    return report
