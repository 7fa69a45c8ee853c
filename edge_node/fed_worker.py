"""The edge's part in federated rounds: train locally when the host asks, then send the adapter UP the radio.

train_start runs edge_node.fed_trainer in a thread (the daemon keeps answering heartbeats and receiving); when it
ends the edge sends train_done and holds the signed payload cut into packets. The uplink is the downlink's
selective repeat reversed, driven by the receiver (the host): each uplink_request names the packets still missing
and the MCS the host picked from the SNR it measured on the last burst; the edge transmits them as one burst of
the same packets (radio.link.packets_burst: framing, CRC, FEC, modulation) on its transmit end of the uplink cable
and answers uplink_sent with where the burst sits on its transmit clock. A host that knows this edge lists
uplink:v2 asks for v2 bursts instead (the request's codeword runs, LDPC MCS and SIG flags): the edge modulates
exactly that burst of its held payload (radio.burst_tx) and answers the same way. The transmit end is the one
radio.backends.factory.make_uplink_backend gives for the edge's radio: the uplink cable (zmq), an emulated Pluto
on an emulated air (pluto, no URI), or the edge's own Pluto (pluto with a URI: the daemon's device, `radio`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from pathlib import Path

from edge_node.fed_trainer import LocalResult, train_local
from edge_node.install import current_adapter
from radio.backends.base import RadioBackend
from radio.backends.factory import make_uplink_backend
from radio.burst_tx import BurstPlan, CodewordRun, burst_waveform
from radio.errors import BackendError, RadioError
from radio.link import LinkSettings, packets_burst
from radio.mcs import LDPC_MCS_TABLE, MCS_TABLE
from radio.reassembly import split
from radio.transmitter import TX_POWER
from testbed.config import TestbedConfig
from testbed.control.server import ControlServer
from testbed.errors import AirLoraError
from testbed.keys import edge_signing_secret
from testbed.messages import Error, TrainDone, TrainStart, UplinkRequest, UplinkSent, ranges_to_seqs

log = logging.getLogger("airlora.edge.fed")


class FedWorker:
    """Local training in a thread and the uplink transmitter of one edge daemon."""

    def __init__(self, cfg: TestbedConfig, control: ControlServer, node_id: str,
                 radio: RadioBackend | None = None) -> None:
        """radio: the edge's own real Pluto when the daemon has it open (its uplink transmits on it); None opens one
        for the uplink (radio.pluto.uri) when needed."""
        self.cfg, self.control, self.node_id = cfg, control, node_id
        self._radio = radio
        self.settings = LinkSettings.from_config(cfg.radio)
        self._thread: threading.Thread | None = None
        self._job: dict | None = None  # the running or finished local round
        self._chunks: list[bytes] = []
        self._payload = b""  # the held payload (frame v2 bursts address it by byte offset)
        self._session: int | None = None
        self._tx: RadioBackend | None = None
        self._tx_endpoint: str | None = None

    # --- local training -----------------------------------------------------------------------------
    def on_train_start(self, peer: bytes, msg: TrainStart) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.control.reply(peer, msg, TrainDone(round=msg.round, session=msg.session, ok=False,
                                                    reason="a local round is still training"))
            return
        if abs(msg.sample_rate_hz - self.cfg.radio.sample_rate_hz) > 1e-6 * msg.sample_rate_hz:
            self.control.reply(peer, msg, TrainDone(round=msg.round, session=msg.session, ok=False,
                                                    reason=f"sample rate {msg.sample_rate_hz:g} Hz differs from the "
                                                           f"edge's {self.cfg.radio.sample_rate_hz:g} Hz"))
            return
        self._chunks, self._session = [], None
        job = {"peer": peer, "msg": msg, "result": None, "error": None, "reported": False}
        self._job = job
        self._thread = threading.Thread(target=self._train, args=(job,), name="fed-train", daemon=True)
        self._thread.start()
        log.info("round %d: local training, %d steps, rank sum %d", msg.round, msg.steps, sum(msg.ranks.values()))

    def _train(self, job: dict) -> None:
        msg: TrainStart = job["msg"]
        try:
            secret, _ = edge_signing_secret(self.cfg, self.node_id)
            folder = current_adapter(self.cfg.edge.adapter_dir)
            job["result"] = train_local(self.cfg, dict(msg.ranks), msg.steps, msg.seed,
                                        Path(folder) if folder else None, msg.start_sha256, secret)
        except AirLoraError as exc:
            job["error"] = str(exc)
        except Exception as exc:  # a bug or a library refusing: reported, never fatal to the daemon
            log.exception("local training failed")
            job["error"] = f"{type(exc).__name__}: {exc}"

    def step(self) -> None:
        """Report a local round that has ended (from the daemon's loop: sockets stay in one thread)."""
        job = self._job
        if job is None or job["reported"] or (self._thread is not None and self._thread.is_alive()):
            return
        job["reported"] = True
        msg: TrainStart = job["msg"]
        result: LocalResult | None = job["result"]
        if result is None:
            log.warning("round %d: local training refused: %s", msg.round, job["error"])
            self.control.send(job["peer"], TrainDone(round=msg.round, session=msg.session, ok=False,
                                                     reason=str(job["error"])[:1024]))
            return
        try:
            self._connect(msg.uplink_endpoint)
        except BackendError as exc:  # e.g. the edge's Pluto cannot be opened: no uplink this round
            log.warning("round %d: no uplink transmitter: %s", msg.round, exc)
            self.control.send(job["peer"], TrainDone(round=msg.round, session=msg.session, ok=False,
                                                     reason=f"no uplink transmitter: {exc}"[:1024]))
            return
        self._chunks = split(result.payload, self.settings.packet_payload_bytes)
        self._payload = result.payload
        self._session = msg.session
        log.info("round %d: trained on %d examples, local accuracy %.3f; holding %d bytes in %d packets", msg.round,
                 result.samples, result.local_accuracy, len(result.payload), len(self._chunks))
        self.control.send(job["peer"], TrainDone(
            round=msg.round, session=msg.session, ok=True, payload_bytes=len(result.payload),
            packet_count=len(self._chunks), payload_sha256=hashlib.sha256(result.payload).hexdigest(),
            samples=result.samples, local_accuracy=result.local_accuracy, train_s=result.train_s,
            final_loss=result.final_loss))

    # --- the uplink ----------------------------------------------------------------------------------
    def _connect(self, endpoint: str) -> None:
        if self._tx is not None and self._tx_endpoint == endpoint:
            return
        self._close_tx()
        self._tx = make_uplink_backend(self.cfg.radio, self.cfg.channel, TX_POWER, "tx", endpoint, device=self._radio)
        self._tx_endpoint = endpoint

    def on_uplink_request(self, peer: bytes, msg: UplinkRequest) -> None:
        if self._session is None or msg.session != self._session or self._tx is None:
            self.control.reply(peer, msg, Error(code="no_session", message=f"uplink session {msg.session} is not "
                                                                           "held by this edge"))
            return
        if msg.runs:
            self._uplink_v2(peer, msg)
            return
        held = len(self._chunks)  # runs clipped to the packets held before they are expanded (a run may span 2**32)
        seqs = ranges_to_seqs([first, min(last, held - 1)] for first, last in msg.ranges if first < held)
        mcs = next((m for m in MCS_TABLE if m.name == msg.mcs), None)
        if mcs is None:
            self.control.reply(peer, msg, Error(code="bad_mcs", message=f"unknown MCS {msg.mcs!r}; the uplink uses "
                                                f"{', '.join(m.name for m in MCS_TABLE)}"))
            return
        if not seqs:
            self.control.reply(peer, msg, Error(code="bad_ranges", message="no packet of the session is asked for"))
            return
        iq = packets_burst({s: self._chunks[s] for s in seqs}, len(self._chunks), msg.session, mcs, self.settings)
        self._transmit(peer, msg, iq, len(seqs))

    def _uplink_v2(self, peer: bytes, msg: UplinkRequest) -> None:
        """The frame v2 burst the request names (its runs must address the held payload)."""
        mcs = next((m for m in LDPC_MCS_TABLE if m.name == msg.mcs), None)
        if mcs is None:
            self.control.reply(peer, msg, Error(code="bad_mcs", message=f"unknown LDPC MCS {msg.mcs!r}; v2 uplink "
                                                f"bursts use {', '.join(m.name for m in LDPC_MCS_TABLE)}"))
            return
        try:
            plan = BurstPlan(msg.session, msg.burst, mcs, tuple(CodewordRun(o, c) for o, c in msg.runs),
                             len(self._payload), msg.flags)
        except RadioError as exc:  # runs outside the payload, too many codewords, unknown flags
            self.control.reply(peer, msg, Error(code="bad_ranges", message=f"uplink burst {msg.burst}: {exc}"[:1024]))
            return
        v2 = self.settings if self.settings.frame == "v2" else dataclasses.replace(self.settings, frame="v2")
        self._transmit(peer, msg, burst_waveform(plan, self._payload, v2), plan.codewords)

    def _transmit(self, peer: bytes, msg: UplinkRequest, iq, count: int) -> None:
        first = self._tx.clock_samples
        try:
            self._tx.tx(iq)
        except BackendError as exc:
            log.warning("uplink burst %d not sent: %s", msg.burst, exc)
            self.control.reply(peer, msg, Error(code="tx_failed", message=str(exc)[:1024]))
            return
        self.control.reply(peer, msg, UplinkSent(session=msg.session, burst=msg.burst, first_sample=first,
                                                 samples_sent=iq.size, packets=count))

    def _close_tx(self) -> None:
        """Close the uplink's transmit end (not the daemon's device: the daemon closes it)."""
        if self._tx is not None and self._tx is not self._radio:
            self._tx.close()
        self._tx = None

    def close(self) -> None:
        self._close_tx()
