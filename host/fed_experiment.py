"""The host side of `airlora fed`: rounds of assign ranks -> local training on the edges -> uplinks -> aggregate ->
broadcast the global adapter.

Each round: every edge gets a rank vector from the policy at the uplink SNR the host measured on that edge's last
uplink (round 1: the SNR the edge measured on a downlink sounding, the channel being reciprocal in emulation);
every edge fine-tunes on its own shard from the installed global adapter (edge_node.fed_worker); the host pulls
each adapter up the radio in turn (host.uplink_receiver: one radio, one uplink at a time; as v2 LDPC bursts,
host.uplink_v2, from edges that list uplink:v2 when radio.frame is v2, else v1 packets), checks its signature
against the trusted edge keys (the signer must be that edge) and its SHA-256 and manifest, aggregates what passed
(ml.aggregate; or ml.dp with fed.dp.enabled), packs and signs the global adapter, measures its accuracy on the
test split, and broadcasts it with the fleet's fountain code (host.fountain_sender); every edge verifies and
installs it as any payload. An edge that fails to train, to send in time or to verify is left out of that round's
aggregate and asked again the next round.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from adapters.signing import TrustStore, key_id, open_payload, public_key
from host.experiment import RunError
from host.fleet import broadcast_tx, edge_crystals_ppm, fleet_air, free_port, local_fleet
from host.fleet_experiment import Fleet, fleet_state
from host.fountain_sender import FountainSender
from host.uplink_receiver import Uplink, UplinkReceiver
from host.uplink_v2 import receive_v2
from radio.backends.factory import make_uplink_backend
from radio.link import LinkSettings
from radio.transmitter import TX_POWER
from testbed import __version__
from testbed.config import TestbedConfig
from testbed.control.endpoint import PeerLost
from testbed.errors import AirLoraError
from testbed.keys import host_signing_secret, host_trusted_edges_dir, trusted_signing_keys
from testbed.messages import CAPABILITY_UPLINK_V2, Hello, ModelIdentity, TrainDone, TrainStart
from testbed.results import RunFolder

SOUNDING_BYTES = 4096


def verify_uplink(payload: bytes, edge: str, trust: TrustStore, identity: dict, max_elements: int):
    """(ml.adapter.Adapter, the decoded payload) of an uplinked payload; AirLoraError (PayloadError) says why it is
    refused: unsigned, signed by another key than the edge's own, altered, over the element limit, another base
    model."""
    from adapters.payload import decode
    from ml.adapter import from_tensors

    opened = open_payload(payload, trust)
    if opened.signer != edge:
        raise AirLoraError(f"signed by {opened.signer} ({opened.signed_by}), not by edge {edge}'s key")
    p = decode(opened.payload, max_elements)
    model = p.manifest.get("model", {})
    if model.get("sha256") != identity["sha256"]:
        raise AirLoraError(f"trained on base model {model.get('name')} ({str(model.get('sha256'))[:12]}), the host "
                           f"runs {identity['name']} ({identity['sha256'][:12]})")
    peft = p.manifest["peft"]
    return from_tensors(peft["modules"], p.tensors, peft["modules_to_save"], peft.get("dropout", 0.0)), p


def v1_settings(settings: LinkSettings) -> LinkSettings:
    """The fed link's v1 settings: the fountain broadcast (and the uplink of an edge without uplink:v2) carries
    frame v1 packets whatever radio.frame says (a v2 LDPC MCS name becomes 'auto')."""
    mcs = "auto" if settings.mcs.startswith("ldpc-") else settings.mcs
    return dataclasses.replace(settings, frame="v1", mcs=mcs)


def _wait_trained(fleet: Fleet, starts: dict[str, TrainStart], timeout_s: float) -> dict[str, TrainDone | str]:
    """Each edge's train_done, or why there is none (refused, timed out, process gone)."""
    out: dict[str, TrainDone | str] = {}
    deadline = time.monotonic() + timeout_s
    while len(out) < len(starts) and time.monotonic() < deadline:
        for name, start in starts.items():
            if name in out:
                continue
            proc = fleet.processes.get(name)
            if proc is not None and not proc.alive:
                out[name] = "the edge process exited"
                continue
            msg = fleet.clients[name].recv(0.0)
            while msg is not None and name not in out:
                if isinstance(msg, TrainDone) and msg.session == start.session:
                    out[name] = msg if msg.ok else f"local training refused: {msg.reason}"
                elif isinstance(msg, PeerLost):
                    pass  # it may come back before the deadline
                msg = fleet.clients[name].recv(0.0)
        time.sleep(0.05)
    for name in starts:
        out.setdefault(name, f"no train_done within {timeout_s:g} s (fed.train_timeout_s)")
    return out


def run_fed_rounds(cfg: TestbedConfig, folder: RunFolder, say: Callable[[str], None],
                   on_round: Callable[[int, Fleet], None] | None = None) -> dict[str, Any]:
    """cfg.fed.rounds federated rounds over cfg.fed.edges local edges; per-round and per-edge rows, summary.
    on_round(round, fleet) runs at the start of every round (tests use it to kill an edge)."""
    from adapters.identity import model_identity
    from adapters.ranks import adaptable_modules, module_shapes
    from ml import dp
    from ml.adapter import Adapter
    from adapters.ranks import alphas
    from ml.aggregate import aggregate, sample_weights, truncate
    from ml.data import load_task
    from ml.evaluate import logits
    from ml.features import batch_features, vocabulary
    from ml.models import head_module_names, load_classifier
    from ml.pack import fp32_logits, pack_adapter, probe_texts
    from host.payload_cost import PayloadCost
    from policy.registry import make_policy

    f = cfg.fed
    t_run = time.monotonic()
    signing_key, key_path = host_signing_secret(cfg)
    say(f"global adapters signed with key {key_id(public_key(signing_key))} ({key_path})")
    identity = model_identity(cfg.model.name, cfg.model.cache_dir)
    hello = Hello(role="host", node_id="host", software_version=__version__,
                  base_model=ModelIdentity(name=identity["name"], sha256=identity["sha256"]),
                  capabilities=["send", "fed"])
    edges = local_fleet(cfg, f.edges)
    air = fleet_air(cfg, edges)  # before any edge starts: a fleet that cannot work fails at once
    sections = {e.name: {"fed": {"shard_index": i}} for i, e in enumerate(edges)}
    settings = v1_settings(LinkSettings.from_config(cfg.radio))
    splits = load_task(cfg.data)
    base, tokenizer = load_classifier(cfg.model, splits.num_labels)
    modules = adaptable_modules(base, cfg.finetune.target_modules)
    shapes = module_shapes(base, modules)
    heads = head_module_names(base)
    base_head = {f"{h}.{n}": p.detach().float().numpy().copy() for h in heads
                 for n, p in base.get_submodule(h).named_parameters()}
    reference = Adapter({}, {}, {}, {}, base_head, heads)  # round 1's starting point: no LoRA, the base head
    features = batch_features([t for t, _ in splits.val], vocabulary(t for t, _ in splits.train))
    cost = PayloadCost(cfg, settings, shapes)  # overhead calibrated on every real payload

    policy = make_policy(f.policy, cost=cost, candidates=tuple(cfg.run.rank_candidates))
    noise = None
    if f.dp.enabled:
        noise = f.dp.noise_multiplier if f.dp.noise_multiplier is not None else dp.noise_for_epsilon(
            f.dp.target_epsilon, f.rounds, f.dp.delta)
        say(f"DP: clip {f.dp.clip_norm:g}, noise multiplier {noise:.3f} (epsilon {dp.epsilon(noise, f.rounds, f.dp.delta):.2f} "
            f"at delta {f.dp.delta:g} after {f.rounds} rounds)")
    rng = np.random.default_rng(f.dp.seed)
    fleet = Fleet(cfg, edges, folder, hello, local=True, sections=sections)
    tx = None
    receivers: dict[str, UplinkReceiver] = {}
    try:
        say(f"waiting for {len(edges)} edges ({', '.join(e.name for e in edges)}) ...")
        acks = fleet.wait_ready(cfg.run.edge_start_timeout_s, identity, say)
        uplink_frame = {n: "v2" if cfg.radio.frame == "v2" and CAPABILITY_UPLINK_V2 in a.capabilities else "v1"
                        for n, a in acks.items()}  # LDPC bursts up from an edge that transmits them
        tx = broadcast_tx(cfg, edges, receive=True)  # a real Pluto hears every uplink too
        sender = FountainSender(fleet.links(), tx, settings, cfg.radio.backend, cfg.fleet, on_event=folder.event)
        host_ppm, edge_ppm = edge_crystals_ppm(cfg, edges) if air == "emulated" else (0.0, {})
        for e in edges:  # the uplink's ends: the edge's channel applied at the host, with its own noise seed
            channel_cfg = (e.channel or cfg.channel).model_copy(update={"seed": (e.channel or cfg.channel).seed + 1000})
            endpoint = f"tcp://127.0.0.1:{free_port()}"  # a real Pluto edge is told it too, and ignores it
            backend = make_uplink_backend(cfg.radio, channel_cfg, TX_POWER, "rx", endpoint,
                                          crystals_ppm=(host_ppm, edge_ppm.get(e.name, 0.0)),
                                          device=tx if air == "pluto" else None)
            receivers[e.name] = UplinkReceiver(endpoint, settings, backend=backend)
        session_base = secrets.randbits(20) << 10
        say("round 1: sounding the channels (downlink; the uplink is measured from round 1's adapters on) ...")
        sounding = sender.deliver(secrets.token_bytes(SOUNDING_BYTES), session_base, cfg.run.burst_report_timeout_s,
                                  apply=False)
        snr: dict[str, float | None] = dict(sender.snr_db)
        folder.event("sounding", snr_db=snr, airtime_s=sounding.airtime_s(settings.sample_rate_hz))
        global_sha: str | None = None
        global_payload: bytes | None = None
        holds: dict[str, str | None] = {e.name: None for e in edges}  # the global adapter each edge installed
        global_ranks: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        edge_rows: list[dict[str, Any]] = []
        cum_up = cum_down = 0.0
        for r in range(1, f.rounds + 1):
            t_round = time.monotonic()
            if on_round is not None:
                on_round(r, fleet)
            catchup = 0.0
            behind = [e.name for e in edges if global_sha and holds[e.name] != global_sha
                      and not (fleet.processes.get(e.name) and not fleet.processes[e.name].alive)]
            if behind and global_payload is not None:  # a restarted edge missed a broadcast: send it the global
                say(f"round {r}: {', '.join(behind)} missed the global adapter; sending it again ...")
                catch = FountainSender([l for l in fleet.links() if l.name in behind], tx, settings,
                                       cfg.radio.backend, cfg.fleet, on_event=folder.event)
                d = catch.deliver(global_payload, session_base + 16 * r + 15, cfg.run.delivery_timeout_s, apply=True,
                                  evaluate=False, apply_timeout_s=cfg.run.apply_timeout_s,
                                  adapter_id=global_sha[:16])
                for n, st in d.edges.items():
                    if st.apply is not None and st.apply.installed:
                        holds[n] = global_sha
                catchup = d.airtime_s(settings.sample_rate_hz)
                cum_down += catchup
            starts, ranks_of = {}, {}
            for i, e in enumerate(edges):
                state = fleet_state({e.name: snr.get(e.name)}, snr.get(e.name), settings, features, modules, shapes,
                                    global_ranks, cfg)
                ranks_of[e.name] = policy.choose(state)
                starts[e.name] = TrainStart(
                    round=r, session=session_base + 16 * r + i + 1, ranks=ranks_of[e.name], steps=f.local_steps,
                    seed=1000 * r + i, start_sha256=global_sha, uplink_endpoint=receivers[e.name].endpoint,
                    sample_rate_hz=settings.sample_rate_hz)
            say(f"round {r}/{f.rounds}: ranks " + ", ".join(
                f"{n} {sum(v.values())} (SNR {'-' if snr.get(n) is None else f'{snr[n]:.1f}'} dB)"
                for n, v in ranks_of.items()) + "; local training ...")
            for e in edges:
                if not (fleet.processes.get(e.name) and not fleet.processes[e.name].alive):
                    fleet.clients[e.name].send(starts[e.name])
            trained = _wait_trained(fleet, starts, f.train_timeout_s)
            trust = TrustStore.from_public_keys(trusted_signing_keys(host_trusted_edges_dir(cfg)),
                                                str(host_trusted_edges_dir(cfg)))
            clients, samples, per_edge, names = [], [], {}, []
            for e in edges:
                done = trained[e.name]
                row: dict[str, Any] = {"round": r, "edge": e.name, "rank_sum": sum(ranks_of[e.name].values()),
                                       "included": False}
                per_edge[e.name] = row
                if isinstance(done, str):
                    row["reason"] = done
                    continue
                row.update(samples=done.samples, local_accuracy=done.local_accuracy, train_s=round(done.train_s, 2),
                           payload_bytes=done.payload_bytes)
                proc = fleet.processes.get(e.name)
                gone = (lambda p=proc: p is not None and not p.alive)
                if uplink_frame.get(e.name) == "v2":
                    up: Uplink = receive_v2(receivers[e.name], fleet.clients[e.name], e.name, done.session,
                                            done.payload_bytes, done.payload_sha256 or "", f.uplink_deadline_s,
                                            f.uplink_max_rounds, gone)
                else:
                    up = receivers[e.name].receive(
                        fleet.clients[e.name], e.name, done.session, done.payload_bytes, done.packet_count,
                        done.payload_sha256 or "", f.uplink_deadline_s, f.uplink_max_rounds, gone=gone)
                row.update(snr_db_uplink=up.snr_db, uplink_airtime_s=up.airtime_s(settings.sample_rate_hz),
                           uplink_bursts=up.bursts, uplink_mcs=up.mcs_per_burst[-1] if up.mcs_per_burst else None,
                           uplink_wall_s=round(up.wall_s, 2))
                cum_up += row["uplink_airtime_s"]
                if receivers[e.name].snr_db is not None:
                    snr[e.name] = receivers[e.name].snr_db  # the next round's ranks come from the measured uplink
                if not up.delivered:
                    row["reason"] = up.reason
                    continue
                try:
                    adapter, _ = verify_uplink(up.payload, e.name, trust, identity, cfg.edge.max_adapter_elements)
                except (AirLoraError, ValueError, KeyError) as exc:
                    row["reason"] = f"refused: {exc}"
                    folder.event("uplink_refused", round=r, edge=e.name, reason=str(exc))
                    continue
                row["included"] = True
                names.append(e.name)
                clients.append(adapter)
                samples.append(done.samples)
            for e in edges:
                edge_rows.append(per_edge[e.name])
                folder.event("fed_edge", **per_edge[e.name], ranks=ranks_of[e.name])
            if not clients:
                raise RunError(f"round {r}: no edge's adapter came up: " + "; ".join(
                    f"{n}: {row.get('reason')}" for n, row in per_edge.items()))
            eps = None
            if f.dp.enabled:
                top = {m: max(c.ranks.get(m, 0) for c in clients) for m in modules}
                starts = None
                if reference.ranks:  # each edge began from the global re-projected to its ranks: measure from there
                    starts = []
                    for n in names:
                        alpha = alphas(ranks_of[n], cfg.finetune.alpha_mode, cfg.finetune.alpha)
                        starts.append(truncate(reference, ranks_of[n], {m: alpha[m] / k for m, k in
                                                                         ranks_of[n].items() if k > 0}))
                glob, stats = dp.private_aggregate(reference, clients, shapes, top, f.dp.clip_norm, noise, rng,
                                                   starts)
                eps = dp.epsilon(noise, r, f.dp.delta)
                folder.event("dp", round=r, norms=stats.norms, clipped=stats.clipped, noise_std=stats.noise_std,
                             epsilon=eps)
            else:
                glob = aggregate(f.aggregation, clients, sample_weights(samples))
            glob.info["shapes"] = shapes
            row_method = "dp-svd" if f.dp.enabled else f.aggregation
            say(f"round {r}: aggregated {len(clients)}/{len(edges)} adapters ({'dp-svd' if f.dp.enabled else f.aggregation}, "
                f"rank sum {sum(glob.ranks.values())}); packing and broadcasting ...")
            texts = probe_texts(cfg, splits)
            packed = pack_adapter(cfg, identity, splits, glob, cfg.finetune.quant, f"fed-{row_method}", tokenizer,
                                  fp32_logits(cfg, identity, splits, glob, tokenizer, texts),
                                  cfg.finetune.double_quant, signing_key, measure_accuracy=True)
            d = sender.deliver(packed.payload, session_base + 16 * r, cfg.run.delivery_timeout_s, apply=True,
                               evaluate=False, apply_timeout_s=cfg.run.apply_timeout_s,
                               adapter_id=packed.payload_sha256[:16])
            installed = [n for n, st in d.edges.items() if st.apply is not None and st.apply.installed]
            for n in installed:
                holds[n] = packed.payload_sha256
            down = d.airtime_s(settings.sample_rate_hz)
            cum_down += down
            global_sha, global_ranks, reference = packed.payload_sha256, dict(glob.ranks), glob
            global_payload = packed.payload
            row = {"round": r, "edges": len(edges), "edges_included": len(clients),
                   "global_accuracy": packed.accuracy_after_quant, "global_rank_sum": sum(glob.ranks.values()),
                   "global_payload_bytes": len(packed.payload), "downlink_airtime_s": down, "catchup_airtime_s": catchup,
                   "downlink_mcs": d.mcs_per_burst[-1] if d.mcs_per_burst else None,
                   "edges_installed": len(installed),
                   "uplink_airtime_s": sum(per_edge[n].get("uplink_airtime_s") or 0.0 for n in per_edge),
                   "cumulative_uplink_airtime_s": cum_up, "cumulative_downlink_airtime_s": cum_down,
                   "mean_local_accuracy": float(np.mean([per_edge[n]["local_accuracy"] for n in per_edge
                                                         if per_edge[n].get("local_accuracy") is not None]))
                   if any(per_edge[n].get("local_accuracy") is not None for n in per_edge) else None,
                   "epsilon": eps, "aggregation": "dp-svd" if f.dp.enabled else f.aggregation,
                   "wall_s": round(time.monotonic() - t_round, 2)}
            rows.append(row)
            folder.event("fed_round", **row)
            say(f"round {r}: global accuracy {packed.accuracy_after_quant:.3f}, {len(installed)}/{len(edges)} edges "
                f"installed it; uplink {row['uplink_airtime_s']:.2f} s, downlink {down:.2f} s of airtime"
                + (f", epsilon {eps:.2f}" if eps is not None else ""))
        return {"rounds": rows, "edges": edge_rows, "wall_s": round(time.monotonic() - t_run, 2),
                "fleet": [e.name for e in edges], "aggregation": f.aggregation, "dp": f.dp.enabled,
                "noise_multiplier": noise, "shards": f.shards, "local_steps": f.local_steps}
    finally:
        for rx in receivers.values():
            rx.close()
        if tx is not None:
            tx.close()
        fleet.close()
