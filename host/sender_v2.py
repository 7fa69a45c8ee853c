"""Deliver one payload over frame v2: LDPC bursts, windowed and pipelined (docs/design/link_v2.md section 4).

`ArqSender` (radio/arq.py) plans each burst; this loop moves it: the burst is modulated lazily
(`burst_chunks`) and handed to the transmitter one chunk at a time, and between chunks the control socket
is read without waiting, so the next burst is on the air while the edge's report on the previous one
travels. The edge answers each burst with a BurstReport, and the burst that ends a pass with a byte
MissingRequest; a burst whose report does not come within its airtime plus report_timeout_s (wall time) is
sent again. An edge that vanishes is waited for; a restarted edge holds nothing, so everything is resent. An
edge resuming the session (this host restarted, or the link came back) first lists what it lacks (a byte
MissingRequest without through_burst): only that is sent (the probe burst may carry held bytes once), and the
bursts after it are numbered past the list's last_burst, so that a dead host's late burst is never taken for one
of this host's.
The host holds one chunk of IQ and one batch of codewords, never a burst or the payload's waveform.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from host.delivery import Delivery, DeliveryError
from radio.arq import PROBE_MCS, ArqSender, BurstOutcome
from radio.backends.base import RadioBackend
from radio.burst import FLAG_LAST
from radio.burst_tx import DEFAULT_CHUNK_SAMPLES, BurstPlan, PayloadSource, as_source, burst_chunks
from radio.errors import BackendError, RadioError
from radio.intervals import from_inclusive
from radio.link import LinkSettings
from radio.link_v2 import make_selector
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerLost
from testbed.messages import (ERR_REASSEMBLY_FAILED, BurstDone, BurstReport, Error, MissingRequest, SessionStart,
                              TransferComplete, from_quarter_db)
from testbed.progress import progress

IDLE_WAIT_S = 0.02  # wait on the control socket when nothing may be sent (window full, pass sent)


class SessionHost(Protocol):
    """What the v2 loop uses of the v1 Sender (host/sender.py): its link, events, and its edge waits."""

    client: ControlClient
    tx: RadioBackend
    settings: LinkSettings
    backend_name: str
    on_event: Callable[..., None]
    edge_check: Callable[[], None]
    snr_db: float | None

    def _wait_edge(self, start: SessionStart, deadline: float, d: Delivery) -> bool: ...


class _Restarted(Exception):
    """The edge came back as a new instance: it holds nothing of the session (internal)."""


class SenderV2:
    """The host's half of a frame v2 delivery; session start, edge waits and the apply wait are the v1 Sender's."""

    def __init__(self, base: SessionHost, chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> None:
        self.base = base
        self.client, self.tx, self.settings = base.client, base.tx, base.settings
        self.chunk_samples = chunk_samples

    def session_start(self, payload: bytes, session: int, deadline_s: float, apply: bool,
                      channel_snr_db: float | None, adapter_id: str | None) -> SessionStart:
        s = self.settings
        return SessionStart(
            session=session, payload_bytes=len(payload), packet_count=-(-len(payload) // s.packet_payload_bytes),
            packet_payload_bytes=s.packet_payload_bytes, mcs=PROBE_MCS,
            payload_sha256=hashlib.sha256(payload).hexdigest(), deadline_s=deadline_s, sample_rate_hz=s.sample_rate_hz,
            backend=self.base.backend_name, adapter_id=adapter_id, apply=apply, channel_snr_db=channel_snr_db,
            frame_version=2, rolloff=s.rolloff, samples_per_symbol=s.samples_per_symbol, mcs_family="ldpc",
            burst_airtime_s=s.burst_airtime_s, interleave_symbols=s.interleave_symbols)

    def transfer(self, payload: bytes, start: SessionStart, d: Delivery, t0: float, report_timeout_s: float) -> None:
        """Bursts until the edge says TransferComplete; DeliveryError at the deadline."""
        arq = ArqSender(len(payload), self.settings, make_selector(self.settings), self.settings.window_bursts,
                        start.session, self.settings.burst_airtime_s, report_timeout_s=report_timeout_s)
        with progress(len(payload), "delivering", unit="B") as bar:
            _Transfer(self, arq, as_source(payload), start, d, t0, bar).run()


class _Transfer:
    """One pass of the loop over one ArqSender: send, poll, settle, until the edge confirms the payload."""

    def __init__(self, owner: SenderV2, arq: ArqSender, source: PayloadSource, start: SessionStart, d: Delivery,
                 t0: float, bar: Any) -> None:
        self.owner, self.arq, self.source, self.start, self.d, self.t0, self.bar = owner, arq, source, start, d, t0, bar
        self.base = owner.base
        self.session = start.session
        self.deadline = t0 + start.deadline_s
        self.complete = False
        self.settled_at: float | None = None  # when every byte was acked but no TransferComplete had come yet

    def now(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> None:
        arq = self.arq
        while not self.complete:
            self.base.edge_check()
            self._check_deadline()
            for burst in arq.expired(self.now()):
                arq.on_timeout(burst)
                self.d.timeouts += 1
                self.base.on_event("report_timeout", session=self.session, burst=burst)
            plan = None if arq.done else arq.next_plan(self.now())
            try:
                if plan is not None:
                    self._send(plan)
                else:
                    self._poll(IDLE_WAIT_S)
                    self._check_settled()
            except _Restarted:
                arq.restart()

    def _check_deadline(self) -> None:
        if time.monotonic() <= self.deadline:
            return
        arq, d = self.arq, self.d
        unconfirmed = arq.payload_bytes - arq.acked.covered_bytes
        raise DeliveryError(
            f"session {self.session}: {unconfirmed} of {arq.payload_bytes} bytes unconfirmed after the "
            f"{self.start.deadline_s:g} s delivery deadline; {d.bursts} bursts sent, last SNR the edge measured: "
            f"{'none' if self.base.snr_db is None else f'{self.base.snr_db:.1f} dB'}; "
            "the edge keeps its previous adapter")

    def _check_settled(self) -> None:
        """Every byte acked, yet no TransferComplete: after a report timeout, resend everything (the edge lost
        the payload, e.g. it failed its SHA-256 and the missing list that followed was lost)."""
        if not self.arq.done:
            self.settled_at = None
            return
        now = self.now()
        if self.settled_at is None:
            self.settled_at = now
        elif now - self.settled_at > self.arq.report_timeout_s:
            self.base.on_event("no_transfer_complete", session=self.session)
            self.settled_at = None
            self.arq.restart()

    # --- sending ----------------------------------------------------------------------------------
    def _send(self, plan: BurstPlan) -> None:
        """Hand the burst to the transmitter chunk by chunk, reading the control socket between chunks."""
        tx, d = self.owner.tx, self.d
        first_sample, sent = tx.clock_samples, 0
        chunks = burst_chunks(plan, self.source, self.owner.settings, self.owner.chunk_samples)
        burst_open = False
        try:
            held, first = next(chunks), True
            for chunk in chunks:
                sent += tx.tx_chunk(held, first, False)
                first, held, burst_open = False, chunk, True
                self._poll(0.0)
            sent += tx.tx_chunk(held, first, True)
            burst_open = False
        except BackendError as exc:
            self._broken(plan, exc)
            return
        except BaseException:  # the edge restarted meanwhile (or the caller stops): end the burst where it got to
            if burst_open:
                self._end_burst()
            raise
        finally:
            d.samples_sent += sent
        fs = self.owner.settings.sample_rate_hz
        d.bursts += 1
        d.mcs_per_burst.append(plan.mcs.name)
        d.codewords_sent += plan.codewords
        last = bool(plan.flags & FLAG_LAST)
        self.base.on_event("burst", session=self.session, burst=plan.burst, mcs=plan.mcs.name,
                           codewords=plan.codewords, samples=sent, airtime_s=sent / fs, last=last)
        self.owner.client.send(BurstDone(
            session=self.session, burst=plan.burst, first_sample=first_sample, samples_sent=sent, ranges=[],
            airtime_s=sent / fs, mcs=plan.mcs.name, codewords=plan.codewords,
            runs=[[r.offset, r.count] for r in plan.runs], last=last))
        self._poll(0.0)

    def _broken(self, plan: BurstPlan, exc: BackendError) -> None:
        """The transmitter refused (the edge stopped draining the cable): end the burst, wait for the edge."""
        self.base.on_event("tx_failed", session=self.session, error=str(exc))
        self._end_burst()
        self.arq.on_timeout(plan.burst)
        self._edge_back()

    def _end_burst(self) -> None:
        """Close an open burst where it got to (best effort: the transmitter may be what failed)."""
        try:
            self.owner.tx.tx_chunk(np.zeros(0, np.complex64), False, True)
        except (BackendError, RadioError):
            pass

    def _edge_back(self) -> None:
        """The edge vanished: wait for it; a restarted edge holds nothing (raise _Restarted), the same instance
        forgot the bursts it was waiting for (they are resent)."""
        if self.base._wait_edge(self.start, self.deadline, self.d):
            raise _Restarted
        for burst in list(self.arq.outstanding):
            self.arq.on_timeout(burst)

    # --- feedback ---------------------------------------------------------------------------------
    def _poll(self, wait_s: float) -> None:
        """Handle what the edge said: wait up to wait_s for the first message, then take the rest at once, up to
        TransferComplete: what follows it (the ApplyResult of a fast refusal) is the apply wait's to read."""
        msg = self.owner.client.recv(timeout_s=wait_s)
        while msg is not None:
            self._handle(msg)
            if self.complete:
                return
            msg = self.owner.client.recv(timeout_s=0.0)

    def _handle(self, msg) -> None:
        if isinstance(msg, PeerLost):
            self._edge_back()
            return
        if getattr(msg, "session", self.session) != self.session:
            return  # a late answer about an earlier session (a sounding)
        arq, d = self.arq, self.d
        if isinstance(msg, BurstReport):
            d.burst_reports.append(msg)
            snr = from_quarter_db(msg.codeword_snr_db) if msg.detected else np.zeros(0)
            failed = tuple(from_inclusive((a, b) for a, b in msg.failed))
            arq.on_report(BurstOutcome(msg.burst, msg.detected, snr, msg.codewords_ok, failed), self.now())
            d.codewords_ok += msg.codewords_ok
            if msg.detected and msg.snr_db is not None:
                self.base.snr_db = msg.snr_db
            self.base.on_event("burst_report", **msg.model_dump(exclude={"type", "version", "req", "codeword_snr_db",
                                                                          "failed"}))
            self.bar.update(max(arq.acked.covered_bytes - self.bar.n, 0))
        elif isinstance(msg, MissingRequest) and msg.unit == "byte":
            ranges = from_inclusive((a, b) for a, b in msg.ranges)
            if msg.truncated and ranges:  # only the first ranges were listed: the rest may be missing too
                ranges.append((ranges[-1][1], arq.payload_bytes))
            if msg.through_burst is None:  # what the edge held before any burst in flight: a resume, a failed hash
                try:
                    arq.on_held(ranges, msg.last_burst)
                except RadioError as exc:
                    raise DeliveryError(f"session {self.session}: {exc}; the edge keeps its previous adapter") from None
            else:
                arq.on_missing(ranges, through_burst=msg.through_burst)
            self.base.on_event("missing", session=self.session, missing=msg.missing_count, through=msg.through_burst,
                               last_burst=msg.last_burst)
        elif isinstance(msg, TransferComplete):
            self.complete = True
            self.base.on_event("transfer_complete", session=self.session, bursts=d.bursts)
        elif isinstance(msg, Error):
            self.base.on_event("edge_error", session=self.session, code=msg.code, message=msg.message)
            if msg.code == ERR_REASSEMBLY_FAILED:
                raise DeliveryError(f"session {self.session}: the edge gave up the session: {msg.message}; "
                                    "the edge keeps its previous adapter")
