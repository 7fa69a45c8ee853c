"""The host side of `airlora run` for a fleet: rounds of sound -> choose ranks -> fine-tune -> broadcast -> apply.

Like host.experiment for one edge, but every delivery is one fountain-coded broadcast to all edges
(host.fountain_sender), the sounding is a short broadcast too, and the policy's state carries every edge's
measured SNR (its `snr_db` is the SNR the fleet's MCS rule picks for, so trained policies see the same input).
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

from adapters.signing import key_id, public_key
from host.edge_process import EdgeProcess
from host.experiment import RunError
from host.fleet import broadcast_tx, fleet_air, write_edge_configs
from host.fountain_sender import FleetDelivery, FleetEdgeLink, FountainSender
from host.payload_cost import round_inputs
from policy.state import PolicyState
from radio.link import LinkSettings
from testbed import __version__
from testbed.config import TestbedConfig
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerTimeout
from testbed.keys import host_signing_secret
from testbed.messages import Hello, ModelIdentity
from testbed.results import RunFolder
from testbed.sections.fleet import FleetEdge

SOUNDING_BYTES = 4096


class Fleet:
    """The edges' control clients (and, for a local fleet, their processes); close() stops what it started."""

    def __init__(self, cfg: TestbedConfig, edges: list[FleetEdge], folder: RunFolder, hello: Hello, local: bool,
                 sections: dict[str, dict[str, dict]] | None = None) -> None:
        self.edges, self.local = edges, local
        paths = write_edge_configs(cfg, edges, folder.path, local, sections)
        self.processes: dict[str, EdgeProcess] = {}
        self.clients: dict[str, ControlClient] = {}
        try:
            for e in edges:
                if local:
                    self.processes[e.name] = EdgeProcess(paths[e.name], folder.path / f"edge-{e.name}.log", e.name)
                self.clients[e.name] = ControlClient.from_config(cfg.control.model_copy(
                    update={"endpoint": e.control_endpoint}), hello)
        except BaseException:
            self.close()
            raise

    def wait_ready(self, timeout_s: float, identity: dict, say: Callable[[str], None]) -> dict[str, Any]:
        """Wait for every edge; RunError when a local one does not come up or any runs another base model."""
        acks = {}
        deadline = time.monotonic() + timeout_s
        for e in self.edges:
            client, proc = self.clients[e.name], self.processes.get(e.name)
            remaining = max(deadline - time.monotonic(), 0.5)
            try:
                ack = proc.wait_ready(client, remaining) if proc else client.wait_ready(remaining)
            except PeerTimeout as exc:
                if self.local:
                    raise RunError(f"edge {e.name} at {e.control_endpoint} is not available: {exc}") from None
                say(f"edge {e.name} is not answering yet ({exc}); the broadcast starts without it")
                continue
            if ack.base_model and ack.base_model.sha256 and ack.base_model.sha256 != identity["sha256"]:
                raise RunError(f"edge {e.name} runs base model {ack.base_model.name} ({ack.base_model.sha256[:12]}), "
                               f"the host {identity['name']} ({identity['sha256'][:12]}): adapters would not apply")
            acks[e.name] = ack
        return acks

    def links(self) -> list[FleetEdgeLink]:
        def gone(name: str) -> Callable[[], bool]:  # the process looked up when asked: a restarted edge is a new one
            return lambda: (proc := self.processes.get(name)) is not None and not proc.alive

        return [FleetEdgeLink(e.name, self.clients[e.name], gone(e.name)) for e in self.edges]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        for proc in self.processes.values():
            proc.stop()


def run_fleet_rounds(cfg: TestbedConfig, folder: RunFolder, say: Callable[[str], None], edges: list[FleetEdge],
                     local: bool, pluto_uri: str | None = None) -> dict[str, Any]:
    """cfg.run.rounds rounds against the fleet; per-round rows, per-edge rows and the run's summary."""
    from adapters.identity import model_identity
    from host.pipeline import finetune_and_pack

    fleet_air(cfg, edges, pluto_uri)  # before any edge starts: a fleet that cannot work fails at once
    t_run = time.monotonic()
    signing_key, key_path = host_signing_secret(cfg)
    say(f"payloads signed with key {key_id(public_key(signing_key))} ({key_path})")
    identity = model_identity(cfg.model.name, cfg.model.cache_dir)
    hello = Hello(role="host", node_id="host", software_version=__version__,
                  base_model=ModelIdentity(name=identity["name"], sha256=identity["sha256"]), capabilities=["send"])
    fleet = Fleet(cfg, edges, folder, hello, local)
    tx = None
    try:
        say(f"waiting for {len(edges)} edges ({', '.join(e.name for e in edges)}) ...")
        acks = fleet.wait_ready(cfg.run.edge_start_timeout_s, identity, say)
        folder.event("fleet_ready", edges={n: a.node_id for n, a in acks.items()})
        tx = broadcast_tx(cfg, edges, pluto_uri)
        settings = LinkSettings.from_config(cfg.radio)
        sender = FountainSender(fleet.links(), tx, settings, cfg.radio.backend, cfg.fleet, on_event=folder.event)
        splits, features, modules, shapes, cost, policy = round_inputs(cfg, settings)
        session_base = secrets.randbits(24) << 8
        ranks: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        edge_rows: list[dict[str, Any]] = []
        set_snr = {e.name: (e.channel.snr_db if e.channel is not None else cfg.channel.snr_db) for e in edges}
        for index in range(cfg.run.rounds):
            t_round = time.monotonic()
            say(f"round {index + 1}/{cfg.run.rounds}: sounding the fleet's channels ...")
            sounding = sender.deliver(secrets.token_bytes(SOUNDING_BYTES), session_base + 2 * index,
                                      cfg.run.burst_report_timeout_s, apply=False)
            state = fleet_state(sender.snr_db, sender.fleet_snr_db(), settings, features, modules, shapes, ranks, cfg)
            ranks = policy.choose(state)
            say(f"round {index + 1}: edges measured {_snr_text(sender.snr_db)} -> {cfg.fleet.mcs_rule} "
                f"{state.snr_db:.1f} dB -> {policy.name} ranks sum {sum(ranks.values())}; fine-tuning ...")
            folder.event("ranks", round=index + 1, snr_db=state.snr_db, fleet_snr_db=state.fleet_snr_db, ranks=ranks)
            payload, ft = finetune_and_pack(cfg, ranks=ranks, steps=cfg.run.steps, splits=splits,
                                            adalora_target_rank=policy.adalora_target_rank,
                                            accuracy_before=rows[0]["base_accuracy"] if rows else None,
                                            signing_key=signing_key)
            cost.calibrate(ranks, len(payload))
            folder.event("finetuned", round=index + 1, **{k: v for k, v in ft.items() if k != "ranks"})
            say(f"round {index + 1}: host accuracy {ft['accuracy_after']:.3f}, payload {len(payload)} bytes; "
                f"broadcasting to {len(edges)} edges ...")
            d = sender.deliver(payload, session_base + 2 * index + 1, cfg.run.delivery_timeout_s, apply=True,
                               evaluate=cfg.fleet.evaluate, apply_timeout_s=cfg.run.apply_timeout_s,
                               adapter_id=ft["payload_sha256"][:16])
            row = round_row(index + 1, d, settings, state, policy.name, sum(ranks.values()), ft, len(payload))
            row["sounding_airtime_s"] = sounding.airtime_s(settings.sample_rate_hz)
            row["wall_s"] = round(time.monotonic() - t_round, 2)
            rows.append(row)
            for name, e in d.edges.items():
                edge_rows.append({"round": index + 1, "snr_db_set": set_snr[name], **e.row()})
            folder.event("round", **row)
            say(f"round {index + 1}: {row['edges_installed']}/{row['edges']} edges installed, airtime "
                f"{row['airtime_s']:.2f} s ({row['symbols_sent']} symbols for K = {row['source_symbols']})")
        return {"rounds": rows, "edges": edge_rows, "wall_s": round(time.monotonic() - t_run, 2),
                "modules": len(modules), "features": features, "fleet": [e.name for e in edges],
                "mcs_rule": cfg.fleet.mcs_rule}
    finally:
        if tx is not None:
            tx.close()
        fleet.close()


def fleet_state(snr_db: dict[str, float | None], rule_snr: float | None, settings: LinkSettings,
                features: dict[str, float], modules: list[str], shapes: dict, ranks: dict[str, int],
                cfg: TestbedConfig) -> PolicyState:
    """The policy's state for a fleet: snr_db is the rule's SNR (-10 dB when nothing was measured)."""
    return PolicyState(snr_db=rule_snr if rule_snr is not None else -10.0,
                       bandwidth_hz=settings.occupied_bandwidth_hz, entropy=features["lexical_entropy"],
                       oov_rate=features["oov_rate"], modules=modules, shapes=shapes, ranks=ranks,
                       r_max=cfg.run.r_max, deadline_s=cfg.run.airtime_budget_s,
                       fleet_snr_db=[s for s in snr_db.values() if s is not None])


def round_row(number: int, d: FleetDelivery, settings: LinkSettings, state: PolicyState, policy: str,
              rank_sum: int, ft: dict[str, Any], payload_bytes: int) -> dict[str, Any]:
    """One round of a fleet run as the run table shows it."""
    installed = [e.apply for e in d.edges.values() if e.apply is not None and e.apply.installed]
    accuracies = [a.accuracy for a in installed if a.accuracy is not None]
    return {"round": number, "edges": len(d.edges), "snr_db_set": None, "snr_db_measured": state.snr_db,
            "snr_db_min": state.snr_db_min, "snr_db_mean": state.snr_db_mean, "policy": policy,
            "rank_sum": rank_sum,
            "payload_bytes": payload_bytes, "quant": ft["quant"],
            "mcs": d.mcs_per_burst[-1] if d.mcs_per_burst else None, "mcs_per_burst": d.mcs_per_burst,
            "airtime_s": d.airtime_s(settings.sample_rate_hz), "bursts": d.bursts, "symbols_sent": d.symbols_sent,
            "source_symbols": d.source_symbols, "edges_done": sum(e.done for e in d.edges.values()),
            "edges_installed": len(installed), "delivered": d.all_done,
            "installed": len(installed) == len(d.edges),
            "host_accuracy": ft["accuracy_after"], "base_accuracy": ft["accuracy_before"],
            "edge_accuracy": statistics.fmean(accuracies) if accuracies else None,
            "edge_accuracy_min": min(accuracies) if accuracies else None, "train_s": ft["train_s"],
            "delivery_wall_s": round(d.wall_s, 2)}


def _snr_text(snr_db: dict[str, float | None]) -> str:
    return ", ".join(f"{n} {'-' if s is None else f'{s:.1f}'}" for n, s in snr_db.items())

