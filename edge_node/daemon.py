"""The edge daemon: control port, receive stream, reassembly, verification, install, evaluation, reports.

It serves any number of sessions one after another, across host restarts: a SessionStart for the session
it already holds (same payload SHA-256) resumes it, any other SessionStart replaces it. A live session
belongs to the host that started it: another host's SessionStart or BurstDone is refused (session_busy,
not_session_owner) while the owner is still tracked by the control plane; once the owner is gone (silent
for control.peer_timeout_s, said bye, or evicted), anyone may resume or replace it. With CurveZMQ the owner
is its key, so a restarted host resumes its own session at once. A SessionStart is refused before
anything is allocated when its payload or packet count is over edge.max_payload_bytes / edge.max_packets.
Nothing is installed before the whole payload is there, its SHA-256 matches, and the adapter passes its
checks.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from edge_node.apply_report import ApplyReport
from edge_node.fed_worker import FedWorker
from edge_node.fountain_session import FountainSession
from edge_node.frame_v2 import FrameV2Edge, capabilities as v2_capabilities
from edge_node.install import check_adapter_dir, current_adapter
from edge_node.radio_input import RadioInput
from edge_node.session import EdgeSession
from edge_node.session_v2 import EdgeSessionV2
from radio.backends.base import RadioBackend
from radio.backends.factory import make_backend
from radio.receiver import Receiver
from radio.throttle import LogThrottle
from radio.transmitter import TX_POWER
from testbed import __version__
from testbed.config import TestbedConfig
from testbed.control.endpoint import PeerLost, peer_name
from testbed.control.server import ControlServer, refuse_insecure_bind
from testbed.errors import AirLoraError
from testbed.keys import cable_curve
from testbed.messages import (ERR_NOT_OWNER, ERR_SESSION_BUSY, ApplyResult, BurstDone, Bye, Error, FountainStart, Hello,
                              Message, ModelIdentity, SessionAck, SessionStart, TrainStart, TransferComplete,
                              UplinkRequest)

log = logging.getLogger("airlora.edge")


def remove_leftovers(adapter_dir: str | Path) -> list[str]:
    """Remove what an install interrupted by a crash left (staging-*/ folders, .current-* links); their names.

    They were never installed (`current` only ever points into versions/), but they take disk space and
    look like adapters to a person browsing the folder. A staging folder of a process still running (an
    `airlora apply` next to the daemon; the pid is in its name) is left alone.
    """
    root = Path(adapter_dir).expanduser()
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.glob("staging-*")) + sorted(root.glob(".current-*")):
        if path.name.startswith("staging-") and _pid_alive(path.name.split("-")[1]):
            continue
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    if removed:
        log.warning("removed leftovers of an interrupted install in %s: %s", root, ", ".join(removed))
    return removed


def _pid_alive(text: str) -> bool:
    if not text.isdigit() or int(text) == os.getpid():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def cable_bind_endpoint(cfg: TestbedConfig) -> str | None:
    """The radio.zmq address this edge binds (its receiver's end of the IQ cable); None when it binds none (another
    backend, a real Pluto of its own, or the host binds the cable)."""
    r = cfg.radio
    cable = r.backend == "zmq" or (r.backend == "pluto" and (r.pluto.uri is None or r.pluto.one_device))
    if not cable or r.zmq.bind_side != "rx":
        return None
    return r.zmq.bind_endpoint or r.zmq.endpoint


class EdgeDaemon:
    """Runs the edge: call serve() (blocks) or step() in a loop."""

    def __init__(self, cfg: TestbedConfig, backend: RadioBackend | None = None,
                 control: ControlServer | None = None, node_id: str = "edge") -> None:
        self.cfg = cfg
        check_adapter_dir(cfg.edge.adapter_dir)  # before anything binds or loads: a bad folder starts nothing
        if control is None:  # before any slow start-up work: a config the edge refuses fails at once
            refuse_insecure_bind(cfg.control.bind_endpoint, cfg.control.curve.enabled, cfg.edge.allow_insecure_bind)
        if backend is None and (iq_bind := cable_bind_endpoint(cfg)) is not None:
            refuse_insecure_bind(iq_bind, cfg.control.curve.enabled, cfg.edge.allow_insecure_bind, port="IQ cable")
        self.identity = self._identity(node_id)
        self.control = control or ControlServer.from_config(cfg.control, self.identity,
                                                            allow_insecure_bind=cfg.edge.allow_insecure_bind)
        self._log_trust()
        self.backend = backend or make_backend(cfg.radio, cfg.channel, TX_POWER, role="rx",
                                               curve=cable_curve(cfg.control.curve, "rx"))
        r = cfg.radio
        self.receiver = Receiver(r.sample_rate_hz, r.samples_per_symbol, r.rolloff, keep_symbols=True)
        self.radio = RadioInput(self.backend, self.receiver)
        self.v2 = FrameV2Edge(cfg, self.backend)  # frame v2 sessions: burst receiver, byte reassembly
        self.removed_leftovers = remove_leftovers(cfg.edge.adapter_dir)
        self.session: EdgeSession | EdgeSessionV2 | FountainSession | None = None
        self._erase = cfg.edge.erase_fraction  # emulated erasures (benchmarks): drop this fraction of good packets
        self._erase_rng = np.random.default_rng()
        self.repair_round = 0
        self.running = True
        self.last_apply: ApplyReport | None = None
        self._log = LogThrottle(log)  # refusals of what hosts send: rate-limited
        self._session_log = LogThrottle(log)  # session starts, resumes, losses: rate-limited apart from refusals
        self.fed = FedWorker(cfg, self.control, node_id, radio=self.backend)  # federated rounds: local training and the uplink

    def _identity(self, node_id: str) -> Hello:
        from edge_node.payload_reader import edge_identity

        ident = edge_identity(self.cfg)
        current = current_adapter(self.cfg.edge.adapter_dir)
        return Hello(role="edge", node_id=node_id, software_version=__version__,
                     base_model=ModelIdentity(name=ident["name"], sha256=ident["sha256"]),
                     capabilities=["apply", "fed", f"radio:{self.cfg.radio.backend}", *v2_capabilities(self.cfg)],
                     adapter_id=current.name if current else None)

    def _log_trust(self) -> None:
        """Say at start whose payloads this edge will install (the store is read again for every payload)."""
        from edge_node.payload_reader import edge_trust

        try:
            trust = edge_trust(self.cfg)
        except AirLoraError as exc:
            log.warning("%s; every payload is refused until it is fixed", exc)
            return
        if self.cfg.edge.allow_unsigned:
            log.warning("edge.allow_unsigned is true: unsigned payloads and unknown signers are installed too")
        elif trust.keys:
            names = ", ".join(f"{name} ({kid})" for kid, (name, _) in sorted(trust.keys.items()))
            log.info("installs payloads signed by %s from %s", names, trust.source)
        else:
            log.warning("no trusted signing keys in %s: every payload is refused until a host's NAME.sign is "
                        "copied there (`airlora keys`)", trust.source)

    # --- main loop ---------------------------------------------------------------------------------
    def serve(self, max_s: float | None = None) -> None:
        """Serve until stopped (SIGTERM/KeyboardInterrupt ends it; max_s bounds it for tests)."""
        deadline = None if max_s is None else time.monotonic() + max_s
        try:
            while self.running and (deadline is None or time.monotonic() < deadline):
                self.step()
        finally:
            self.close()

    def step(self) -> None:
        """Handle pending control messages, then read the radio once."""
        v2 = isinstance(self.session, EdgeSessionV2)
        busy = self.v2.expecting() if v2 else self.radio.expecting
        item = self.control.poll(0.0 if busy else 0.02)
        while item is not None:
            try:
                self._on_message(*item)
            except Exception:  # one bad message (or a bug handling it) must not stop the daemon
                log.exception("error while handling %s; the daemon goes on", getattr(item[1], "type", "a message"))
            item = self.control.poll(0.0)
        self.fed.step()
        if isinstance(self.session, EdgeSessionV2):  # frame v2: reports and completion in edge_node/frame_v2.py
            return self.v2.step(self.session, self.control, self._apply, wait_s=0.0 if busy else 0.01)
        packets, burst_done = self.radio.step(self.session is not None, wait_s=0.0 if busy else 0.01)
        if self.session is not None:
            for packet in packets:
                if self._erase and packet.payload is not None and self._erase_rng.random() < self._erase:
                    packet.payload = None  # an erasure, as a failed CRC would make it
                self.session.on_packet(packet)
            if burst_done:
                self._report_burst()

    def close(self) -> None:
        """Close the control port and the radio."""
        self.fed.close()
        self.control.close()
        self.backend.close()

    # --- control messages --------------------------------------------------------------------------
    def _on_message(self, peer: bytes, msg: Message | PeerLost) -> None:
        if isinstance(msg, PeerLost):
            s = self.session
            if s is not None and not s.finished and s.peer == peer:
                self._session_log.log(logging.INFO, "host %s (owner of session %d) lost: %s; the session stays open "
                                      "for a resume", peer_name(peer), s.session, msg.reason)
        elif isinstance(msg, (SessionStart, FountainStart)):
            self._on_session_start(peer, msg)
        elif isinstance(msg, BurstDone):
            self._on_burst_done(peer, msg)
        elif isinstance(msg, TrainStart):
            self.fed.on_train_start(peer, msg)
        elif isinstance(msg, UplinkRequest):
            self.fed.on_uplink_request(peer, msg)
        elif isinstance(msg, Bye):
            self._session_log.log(logging.INFO, "host %s said bye: %s", peer_name(peer), msg.reason)
        elif msg.type not in ("hello", "heartbeat"):
            self.control.reply(peer, msg, Error(code="unexpected", message=f"the edge does not take {msg.type!r}"))

    def _live_owner_elsewhere(self, peer: bytes, user: str | None) -> str | None:
        """Why this host may not touch the live session (another host owns it and is still there); None if it may."""
        s = self.session
        if s is None or s.finished or s.owned_by(peer, user):
            return None
        owner = self.control.peers_alive().get(s.peer)
        if owner is None or owner.user_id != s.user:
            return None  # the owner is gone: its session may be resumed or replaced
        return (f"the edge is serving session {s.session} of host {owner.hello.node_id}, which is still connected; "
                "try again when it has ended")

    def _refuse_start(self, peer: bytes, msg: SessionStart, reason: str) -> None:
        self._log.log(logging.WARNING, "refused session %d from host %s: %s", msg.session, peer_name(peer), reason)
        self.control.reply(peer, msg, SessionAck(session=msg.session, ready=False, reason=reason[:1024]))

    def _on_session_start(self, peer: bytes, msg: SessionStart | FountainStart) -> None:
        edge = self.cfg.edge
        fountain = isinstance(msg, FountainStart)
        if abs(msg.sample_rate_hz - self.cfg.radio.sample_rate_hz) > 1e-6 * msg.sample_rate_hz:
            return self._refuse_start(peer, msg, f"sample rate {msg.sample_rate_hz:g} Hz differs from the edge's "
                                                 f"{self.cfg.radio.sample_rate_hz:g} Hz")
        if msg.payload_bytes > edge.max_payload_bytes:
            return self._refuse_start(peer, msg, f"payload of {msg.payload_bytes} bytes exceeds the edge's limit of "
                                                 f"{edge.max_payload_bytes} (edge.max_payload_bytes)")
        v2 = not fountain and msg.frame_version == 2
        if v2 and (why := self.v2.refusal(msg)) is not None:
            return self._refuse_start(peer, msg, why)
        if not fountain and not v2 and msg.packet_count > edge.max_packets:
            return self._refuse_start(peer, msg, f"{msg.packet_count} packets exceed the edge's limit of "
                                                 f"{edge.max_packets} (edge.max_packets; send larger packets)")
        user = self.control.peer_user(peer)
        busy = self._live_owner_elsewhere(peer, user)
        if busy is not None:
            self._log.log(logging.WARNING, "refused session %d from host %s: %s", msg.session, peer_name(peer), busy)
            self.control.reply(peer, msg, Error(code=ERR_SESSION_BUSY, message=busy))
            return
        same_kind = (isinstance(self.session, FountainSession) == fountain
                     and isinstance(self.session, EdgeSessionV2) == v2)
        resume = self.session is not None and same_kind and self.session.matches(msg) and not self.session.finished
        if resume:
            self.session.peer, self.session.user = peer, user
        if resume and isinstance(self.session, EdgeSessionV2):
            self.v2.resume(self.session)
            self._session_log.log(logging.INFO, "session %d (frame v2) resumed: %d of %d bytes held", msg.session,
                                  self.session.reassembly.received_bytes, msg.payload_bytes)
        elif resume:
            held = self.session.decoder.received if fountain else self.session.reassembly.received
            self._session_log.log(logging.INFO, "session %d resumed: %d of %d %s held", msg.session, held,
                                  msg.source_symbols if fountain else msg.packet_count,
                                  "symbols" if fountain else "packets")
        elif v2:
            if isinstance(self.session, EdgeSessionV2):
                self.session.close()  # a replaced v2 session's reassembly (and spill file) goes
            self.session = self.v2.new_session(msg, peer, user)
            self._session_log.log(logging.INFO, "session %d (frame v2): %d bytes, bursts of up to %g s", msg.session,
                                  msg.payload_bytes, msg.burst_airtime_s)
        elif fountain:
            self.session = FountainSession(msg, peer, user)
            self._session_log.log(logging.INFO, "fountain session %d: %d bytes in %d source symbols of %d bytes",
                                  msg.session, msg.payload_bytes, msg.source_symbols, msg.symbol_bytes)
        else:
            self.session = EdgeSession(msg, peer, user)
            self.repair_round = 0
            self._session_log.log(logging.INFO, "session %d: %d bytes in %d packets at %s", msg.session,
                                  msg.payload_bytes, msg.packet_count, msg.mcs)
        self.control.protect([peer])  # the owner of the live session is never evicted to make room
        self.radio.cancel()  # a burst announced before this start (a vanished host's) is not waited for
        self._set_channel_snr(msg.channel_snr_db)
        self.control.reply(peer, msg, SessionAck(session=msg.session, ready=True))

    def _set_channel_snr(self, snr_db: float | None) -> None:
        """Emulated channels only: the SNR the host's experiment sets for this session."""
        channel = self.backend.channel
        if snr_db is not None and channel is not None:
            channel.set_snr_db(snr_db)

    def _on_burst_done(self, peer: bytes, msg: BurstDone) -> None:
        if self.session is None or msg.session != self.session.session:
            self.control.send(peer, Error(code="no_session", message=f"session {msg.session} is not open"))
            return
        if not self.session.owned_by(peer, self.control.peer_user(peer)):
            self._log.log(logging.WARNING, "refused a burst of session %d from host %s, which did not start it",
                          msg.session, peer_name(peer))
            self.control.send(peer, Error(code=ERR_NOT_OWNER, message=f"session {msg.session} belongs to another "
                                                                      "host"))
            return
        self.session.peer = peer  # (with CurveZMQ, the owner's key may come back on a new routing id)
        if isinstance(self.session, EdgeSessionV2):
            return self.v2.on_burst_done(self.session, msg)
        self.session.bursts_done = msg.burst
        self.radio.expect(msg.first_sample, msg.samples_sent)

    # --- reports and apply -------------------------------------------------------------------------
    def _report_burst(self) -> None:
        if isinstance(self.session, FountainSession):
            return self._report_fountain(self.session)
        s = self.session
        assert s is not None
        self.control.send(s.peer, s.snr_report(s.bursts_done, self.radio.samples_read))
        s.burst = type(s.burst)()
        if not s.reassembly.complete:
            self.control.send(s.peer, s.missing_request(self.repair_round))
            self.repair_round += 1
            return
        payload = s.payload_if_valid()
        if payload is None:
            log.warning("session %d: reassembled payload does not match its SHA-256; starting over", s.session)
            self.control.send(s.peer, Error(code="sha_mismatch", message="reassembled payload fails its SHA-256"))
            self.session = EdgeSession(s.start, s.peer)
            self.control.send(s.peer, self.session.missing_request(self.repair_round))
            return
        s.finished = True
        self.control.protect([])
        self.control.send(s.peer, TransferComplete(
            session=s.session, payload_sha256=s.start.payload_sha256, packets_received=s.receptions,
            packets_retransmitted=max(s.receptions - s.start.packet_count, 0),
            elapsed_s=time.monotonic() - s.started))
        if s.start.apply:
            self._apply(s, payload)

    def _report_fountain(self, s: FountainSession) -> None:
        """After a burst: what was measured and how far the decoder is; once rebuilt, complete and apply."""
        self.control.send(s.peer, s.snr_report(s.bursts_done, self.radio.samples_read))
        self.control.send(s.peer, s.progress(s.bursts_done))
        s.burst = type(s.burst)()
        if s.sha_mismatches:
            self.control.send(s.peer, Error(code="sha_mismatch", message="the rebuilt payload fails its SHA-256"))
            s.sha_mismatches = 0
        if s.payload is None or s.finished:
            return
        s.finished = True
        self.control.protect([])
        self.control.send(s.peer, TransferComplete(
            session=s.session, payload_sha256=s.start.payload_sha256, packets_received=s.decoder.received,
            elapsed_s=time.monotonic() - s.started))
        if s.start.apply:
            self._apply(s, s.payload, evaluate=s.start.evaluate)

    def _apply(self, s: EdgeSession | EdgeSessionV2 | FountainSession, payload: bytes | Path,
               evaluate: bool = True) -> None:
        from edge_node.pipeline import apply_payload

        t0 = time.monotonic()
        try:
            report = apply_payload(self.cfg, payload, evaluate=evaluate)
        except Exception as exc:  # never let one payload stop the daemon
            log.exception("apply failed")
            report = ApplyReport(installed=False, reason=f"{type(exc).__name__}: {exc}")
        self.last_apply = report
        adapter_id = report.sha256[:16] if report.installed and report.sha256 else None
        acc, err = report.accuracy, report.probe_max_abs_err
        self.control.send(s.peer, ApplyResult(
            session=s.session, installed=report.installed, reason=report.reason[:1024] if report.reason else None,
            accuracy=float(acc) if acc is not None else None, latency_s=time.monotonic() - t0,
            adapter_id=adapter_id, probe_max_abs_err=float(err) if err is not None else None))
        if report.installed:
            current = current_adapter(self.cfg.edge.adapter_dir)
            self.identity = self.identity.model_copy(update={"adapter_id": current.name if current else adapter_id})
            self.control.set_identity(self.identity)
