"""The host side of `airlora run`: rounds of measure -> choose ranks -> fine-tune -> deliver -> apply.

Each round starts with a short channel-sounding delivery (one packet, not applied) so the policy and the
link adaptation use the SNR the edge measured on the channel as it is now; then the adapter is trained
with the policy's ranks, packed, sent with selective repeat, installed and evaluated on the edge.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from adapters.signing import key_id, public_key
from host.edge_process import EdgeProcess
from host.payload_cost import round_inputs
from host.sender import Delivery, DeliveryError, Sender
from host.xo_calibration import local_edge_config
from policy.state import PolicyState
from radio.backends.factory import make_backend
from radio.link import LinkSettings
from radio.transmitter import TX_POWER
from testbed import __version__
from testbed.config import TestbedConfig
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerTimeout
from testbed.errors import AirLoraError
from testbed.keys import cable_curve, host_signing_secret
from testbed.messages import Hello, ModelIdentity
from testbed.results import RunFolder

SOUNDING_BYTES = 4096  # four packets of 1024 bytes: one SNR per packet, several for fading channels


class RunError(AirLoraError):
    """The run could not go on (edge unreachable, different base model, ...)."""


def set_snr_for_round(cfg: TestbedConfig, index: int, real_radio: bool) -> float | None:
    """The SNR the emulated channel applies in this round (None on a real radio: the air decides)."""
    if real_radio:
        return None
    values = cfg.run.snr_db_rounds
    return float(values[index % len(values)]) if values else float(cfg.channel.snr_db)


def run_rounds(cfg: TestbedConfig, folder: RunFolder, say: Callable[[str], None],
               config_path, pluto_uri: str | None = None) -> dict[str, Any]:
    """Run cfg.run.rounds rounds against the edge; the per-round rows and the run's summary."""
    from adapters.identity import model_identity
    from host.pipeline import finetune_and_pack

    t_run = time.monotonic()
    if cfg.radio.backend in ("sim", "replay"):
        raise RunError(f"radio.backend {cfg.radio.backend!r} carries IQ inside one process; airlora run needs a "
                       "link between host and edge: use zmq (a ZeroMQ IQ cable, the loopback fallback) or pluto")
    # before the local edge starts: on first use the default key is generated and trusted by this machine's edge
    signing_key, key_path = host_signing_secret(cfg)
    say(f"payloads signed with key {key_id(public_key(signing_key))} ({key_path})")
    edge = None  # a local edge opens its own device: the host's radio.pluto.xo_correction_hz is not its trim
    if cfg.run.edge == "local":
        edge = EdgeProcess(local_edge_config(cfg.model_dump(mode="json"), config_path), folder.path / "edge.log")
    identity = model_identity(cfg.model.name, cfg.model.cache_dir)
    hello = Hello(role="host", node_id="host", software_version=__version__,
                  base_model=ModelIdentity(name=identity["name"], sha256=identity["sha256"]), capabilities=["send"])
    client = ControlClient.from_config(cfg.control, hello)
    tx = None
    try:
        say(f"waiting for the edge at {cfg.control.endpoint} ...")
        try:
            timeout = cfg.run.edge_start_timeout_s
            ack = edge.wait_ready(client, timeout) if edge else client.wait_ready(timeout)
        except PeerTimeout as exc:
            tail = edge.log_tail() if edge and edge.alive else ""
            raise RunError(f"the edge at {cfg.control.endpoint} is not available: {exc}"
                           + (f"; its log ends:\n{tail}" if tail else "")) from None
        if ack.base_model and ack.base_model.sha256 and ack.base_model.sha256 != identity["sha256"]:
            raise RunError(f"the edge runs base model {ack.base_model.name} ({ack.base_model.sha256[:12]}), "
                           f"the host {identity['name']} ({identity['sha256'][:12]}): adapters would not apply")
        folder.event("edge_ready", node=ack.node_id, adapter=ack.adapter_id, capabilities=ack.capabilities)
        say(f"edge {ack.node_id} ready (installed adapter: {ack.adapter_id or 'none'})")
        tx = make_backend(cfg.radio, cfg.channel, TX_POWER, pluto_uri=pluto_uri, role="tx",
                          curve=cable_curve(cfg.control.curve, "tx"))  # the IQ cable: CurveZMQ with the control plane
        settings = LinkSettings.from_config(cfg.radio)
        sender = Sender(client, tx, settings, cfg.radio.backend, on_event=folder.event,
                        edge_check=edge.check if edge else None)  # a local edge that died stops the run at once
        splits, features, modules, shapes, cost, policy = round_inputs(cfg, settings)
        session_base = secrets.randbits(24) << 8
        ranks: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        for index in range(cfg.run.rounds):
            t_round = time.monotonic()
            real_radio = pluto_uri is not None or (cfg.radio.backend == "pluto" and cfg.radio.pluto.uri is not None)
            snr_set = set_snr_for_round(cfg, index, real_radio=real_radio)
            say(f"round {index + 1}/{cfg.run.rounds}: sounding the channel (SNR set {snr_set} dB) ...")
            sounding = sender.deliver(secrets.token_bytes(SOUNDING_BYTES), session_base + 2 * index,
                                      cfg.run.delivery_timeout_s, cfg.run.burst_report_timeout_s, apply=False,
                                      channel_snr_db=snr_set)
            snr_round_start = sender.snr_db
            state = PolicyState(snr_db=snr_round_start if snr_round_start is not None else -10.0,
                                bandwidth_hz=settings.occupied_bandwidth_hz, entropy=features["lexical_entropy"],
                                oov_rate=features["oov_rate"], modules=modules, shapes=shapes, ranks=ranks,
                                r_max=cfg.run.r_max, deadline_s=cfg.run.airtime_budget_s)
            ranks = policy.choose(state)
            rank_sum = sum(ranks.values())
            measured = "nothing (no packet detected)" if snr_round_start is None else f"{snr_round_start:.1f} dB"
            say(f"round {index + 1}: edge measured {measured} -> {policy.name} ranks sum {rank_sum}; "
                f"fine-tuning ...")
            folder.event("ranks", round=index + 1, snr_db=snr_round_start, ranks=ranks)
            payload, ft = finetune_and_pack(cfg, ranks=ranks, steps=cfg.run.steps, splits=splits,
                                            adalora_target_rank=policy.adalora_target_rank,
                                            accuracy_before=rows[0]["base_accuracy"] if rows else None,
                                            signing_key=signing_key)
            cost.calibrate(ranks, len(payload))
            folder.event("finetuned", round=index + 1, **{k: v for k, v in ft.items() if k != "ranks"})
            say(f"round {index + 1}: host accuracy {ft['accuracy_after']:.3f} (base {ft['accuracy_before']:.3f}), "
                f"payload {len(payload)} bytes ({ft['quant']}); sending ...")
            row: dict[str, Any] = {"round": index + 1, "snr_db_set": snr_set, "policy": policy.name,
                                   "rank_sum": rank_sum, "payload_bytes": len(payload), "quant": ft["quant"],
                                   "host_accuracy": ft["accuracy_after"], "base_accuracy": ft["accuracy_before"],
                                   "train_s": ft["train_s"], "sounding_airtime_s": sounding.airtime_s(settings.sample_rate_hz)}
            try:
                d = sender.deliver(payload, session_base + 2 * index + 1, cfg.run.delivery_timeout_s,
                                   cfg.run.burst_report_timeout_s, apply=True, apply_timeout_s=cfg.run.apply_timeout_s,
                                   channel_snr_db=snr_set, adapter_id=ft["payload_sha256"][:16])
                row.update(_delivery_row(d, settings))
            except DeliveryError as exc:
                say(f"round {index + 1}: delivery failed: {exc}")
                folder.event("delivery_failed", round=index + 1, error=str(exc))
                row.update({"delivered": False, "error": str(exc), "edge_accuracy": None})
            row["wall_s"] = round(time.monotonic() - t_round, 2)
            rows.append(row)
            folder.event("round", **row)
            say(_round_line(row))
        return {"rounds": rows, "wall_s": round(time.monotonic() - t_run, 2), "modules": len(modules),
                "features": features, "edge": ack.node_id}
    finally:
        if tx is not None:
            tx.close()
        client.close()
        if edge is not None:
            edge.stop()


def _delivery_row(d: Delivery, settings: LinkSettings) -> dict[str, Any]:
    snr_packets = [p.snr_db for r in d.snr_reports for p in r.packets]
    row = {
        "snr_db_measured": d.snr_db_measured,
        "snr_db_packets": snr_packets,
        "mcs": d.mcs_per_burst[-1] if d.mcs_per_burst else None,
        "mcs_per_burst": d.mcs_per_burst,
        "airtime_s": d.airtime_s(settings.sample_rate_hz),
        "packets_total": d.packets_total,
        "packets_sent": d.packets_sent,
        "packets_retransmitted": d.packets_retransmitted,
        "bursts": d.bursts,
        "delivered": d.delivered,
        "edge_restarts": d.edge_restarts,
        "delivery_wall_s": round(d.wall_s, 2),
        "frame": d.frame,
    }
    if d.frame == "v2":  # LDPC bursts: codewords instead of packets
        row.update({"codewords_sent": d.codewords_sent, "codewords_resent": d.codewords_resent,
                    "report_timeouts": d.timeouts})
    if d.apply is not None:
        row.update({"installed": d.apply.installed, "edge_accuracy": d.apply.accuracy,
                    "apply_reason": d.apply.reason, "apply_latency_s": d.apply.latency_s,
                    "probe_max_abs_err": d.apply.probe_max_abs_err})
    return row


def _round_line(row: dict[str, Any]) -> str:
    edge = row.get("edge_accuracy")
    snr = row.get("snr_db_measured")
    return (f"round {row['round']}: delivered={row.get('delivered')} SNR set {row['snr_db_set']} / measured "
            f"{snr if snr is None else round(snr, 2)} dB, MCS {row.get('mcs')}, airtime {row.get('airtime_s', 0):.2f} s, "
            f"retransmitted {row.get('packets_retransmitted')}, edge accuracy {edge}")
