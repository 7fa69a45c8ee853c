"""Deliver one payload to the edge: session start, bursts over the radio, selective repeat, apply result.

The MCS of every burst comes from the SNR the edge measured on the previous one (the host never uses a
configured SNR). Packets the edge reports missing are sent again until it confirms the SHA-256, or the
delivery deadline passes (DeliveryError). A vanished edge is waited for and the session resumed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from radio.backends.base import RadioBackend
from radio.errors import BackendError
from radio.link import LinkSettings, packets_burst, pick_mcs
from radio.mcs import MCS_TABLE
from radio.reassembly import split
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerLost, PeerTimeout, RemoteError
from testbed.errors import AirLoraError
from testbed.messages import (ERR_HELLO_REQUIRED, ERR_SESSION_BUSY, MAX_RANGES, ApplyResult, BurstDone, MissingRequest, SessionAck,
                              SessionStart, SnrReport, TransferComplete, ranges_to_seqs, seqs_to_ranges)
from testbed.progress import progress


class DeliveryError(AirLoraError):
    """A payload could not be delivered (deadline, refusal); the edge keeps its previous adapter."""


class _EdgeLost(Exception):
    """The edge vanished while it applied the payload (internal: deliver() sends the payload again)."""


_RESTARTED = object()  # _await_burst_outcome: the edge came back as a new instance


def _ranges_text(seqs: list[int], limit: int = 8) -> str:
    """'0-3, 7, 9-12' (the first `limit` runs, then how many more)."""
    ranges = seqs_to_ranges(seqs)
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit])
    return text + (f" and {len(ranges) - limit} more runs" if len(ranges) > limit else "")


@dataclass
class Delivery:
    """What one delivery did, measured."""

    session: int
    payload_bytes: int
    packets_total: int
    delivered: bool = False
    bursts: int = 0
    packets_sent: int = 0
    samples_sent: int = 0
    mcs_per_burst: list[str] = field(default_factory=list)
    snr_reports: list[SnrReport] = field(default_factory=list)
    apply: ApplyResult | None = None
    edge_restarts: int = 0
    wall_s: float = 0.0

    @property
    def packets_retransmitted(self) -> int:
        return self.packets_sent - self.packets_total

    def airtime_s(self, sample_rate_hz: float) -> float:
        return self.samples_sent / sample_rate_hz

    @property
    def snr_db_measured(self) -> float | None:
        """Mean of the edge's per-burst means, weighted by packets detected."""
        pairs = [(r.mean_snr_db, r.packets_detected) for r in self.snr_reports if r.mean_snr_db is not None]
        total = sum(n for _, n in pairs)
        return sum(s * n for s, n in pairs) / total if total else None


class Sender:
    """The host's half of a delivery over one control client and one transmit backend."""

    def __init__(self, client: ControlClient, tx: RadioBackend, settings: LinkSettings, backend_name: str,
                 on_event: Callable[..., None] | None = None, edge_check: Callable[[], None] | None = None) -> None:
        """edge_check: called while waiting on the edge; it raises when the edge is gone for good (a local edge
        process that exited), so a delivery stops at once instead of waiting out its deadline."""
        self.client, self.tx, self.settings = client, tx, settings
        self.backend_name = backend_name
        self.on_event = on_event or (lambda kind, **f: None)
        self.edge_check = edge_check or (lambda: None)
        self.snr_db: float | None = None  # the edge's latest measurement
        self._edge_instance: str | None = None  # the edge instance that acknowledged the current session

    def deliver(self, payload: bytes, session: int, deadline_s: float, report_timeout_s: float,
                apply: bool = True, apply_timeout_s: float = 600.0, channel_snr_db: float | None = None,
                adapter_id: str | None = None) -> Delivery:
        """Send payload until the edge confirms it (and, with apply, report its apply result)."""
        t0 = time.monotonic()
        chunks = split(payload, self.settings.packet_payload_bytes)
        d = Delivery(session, len(payload), len(chunks))
        start = SessionStart(
            session=session, payload_bytes=len(payload), packet_count=len(chunks),
            packet_payload_bytes=self.settings.packet_payload_bytes,
            mcs=pick_mcs(self.settings, self.snr_db).name, payload_sha256=hashlib.sha256(payload).hexdigest(),
            deadline_s=deadline_s, sample_rate_hz=self.settings.sample_rate_hz, backend=self.backend_name,
            adapter_id=adapter_id, apply=apply, channel_snr_db=channel_snr_db)
        deadline = t0 + deadline_s
        self._start_session(start, deadline)
        self.on_event("session", session=session, snr_db_set=channel_snr_db, apply=apply, payload_bytes=len(payload),
                      packets=len(chunks))
        missing = list(range(len(chunks)))
        while True:
            with progress(len(chunks), "delivering", unit="packet") as bar:  # packets the edge acknowledged
                self._transfer(start, chunks, missing, d, t0, report_timeout_s, bar)
            d.delivered = True
            if not apply:
                break
            try:
                d.apply = self._await_apply(session, apply_timeout_s)
                break
            except _EdgeLost:
                # The edge vanished while rebuilding/installing: nothing half-done is live there (installs
                # are atomic), but a restarted edge holds nothing of this session: send it again.
                d.delivered = False
                self._wait_edge(start, deadline, d)
                missing = list(range(len(chunks)))
        d.wall_s = time.monotonic() - t0
        return d

    def _transfer(self, start: SessionStart, chunks: list[bytes], missing: list[int], d: Delivery, t0: float,
                  report_timeout_s: float, bar=None) -> None:
        """Bursts and selective repeat until the edge confirms the whole payload (DeliveryError at the deadline);
        `bar` (a testbed.progress bar) counts the packets the edge has acknowledged."""
        session, deadline_s = start.session, start.deadline_s
        deadline = t0 + deadline_s
        while missing:
            self.edge_check()
            if time.monotonic() > deadline:
                raise DeliveryError(
                    f"session {session}: {len(missing)} of {len(chunks)} packets still missing after the "
                    f"{deadline_s:g} s delivery deadline (missing packets {_ranges_text(missing)}); "
                    f"{d.bursts} bursts sent, last SNR the edge measured: "
                    f"{'none' if self.snr_db is None else f'{self.snr_db:.1f} dB'}; "
                    "the edge keeps its previous adapter")
            mcs = self._burst_mcs()
            iq = packets_burst({s: chunks[s] for s in missing}, len(chunks), session, mcs, self.settings)
            first = self.tx.clock_samples
            try:
                self.tx.tx(iq)
            except BackendError as exc:
                self.on_event("tx_failed", session=session, error=str(exc))
                if self._wait_edge(start, deadline, d):
                    missing = list(range(len(chunks)))
                continue
            d.bursts += 1
            d.packets_sent += len(missing)
            d.samples_sent += iq.size
            d.mcs_per_burst.append(mcs.name)
            airtime = iq.size / self.settings.sample_rate_hz
            self.on_event("burst", session=session, burst=d.bursts, mcs=mcs.name, packets=len(missing),
                          samples=iq.size, airtime_s=airtime)
            self.client.send(BurstDone(session=session, burst=d.bursts, first_sample=first, samples_sent=iq.size,
                                       ranges=seqs_to_ranges(missing)[:MAX_RANGES], airtime_s=airtime))
            outcome = self._await_burst_outcome(session, d, report_timeout_s + airtime, deadline, start)
            if outcome is _RESTARTED:
                missing = list(range(len(chunks)))  # a restarted edge holds nothing of this session
            elif outcome is not None:
                missing = outcome
            # None: nothing heard in time: send the same packets again
            if bar is not None:
                bar.set_postfix(burst=d.bursts, mcs=mcs.name, refresh=False)
                bar.update(len(chunks) - len(missing) - bar.n)

    def _burst_mcs(self):
        """The configured MCS, or (auto) the one the edge's last measurement supports; the fastest before any."""
        if self.snr_db is None and self.settings.mcs == "auto":
            return MCS_TABLE[-1]  # SNR is measured on the preamble whether or not the packets decode
        return pick_mcs(self.settings, self.snr_db)

    def _start_session(self, start: SessionStart, deadline: float) -> None:
        while True:
            self.edge_check()
            try:
                ack = self.client.request(start, SessionAck, timeout_s=max(1.0, min(10.0, deadline - time.monotonic())))
            except (PeerTimeout, RemoteError) as exc:
                # RemoteError: a restarted edge saw the request before our hello (hello_required); say it again.
                # session_busy: another host's session is live there; its host may be gone soon (the edge lets
                # a session go once its owner is silent for control.peer_timeout_s): ask again until the deadline.
                code = exc.code if isinstance(exc, RemoteError) else None
                if code not in (None, ERR_HELLO_REQUIRED, ERR_SESSION_BUSY):
                    raise DeliveryError(f"session {start.session}: the edge refused it: {exc}") from None
                if time.monotonic() > deadline:
                    why = exc.message if code == ERR_SESSION_BUSY else "the edge did not answer"
                    raise DeliveryError(f"session {start.session}: {why} before the deadline") from None
                if code == ERR_SESSION_BUSY:
                    self.on_event("edge_busy", session=start.session, reason=exc.message)
                    time.sleep(0.2)
                elif code is not None:
                    time.sleep(0.05)
                continue
            if not ack.ready:
                raise DeliveryError(f"session {start.session}: the edge refused it: {ack.reason}")
            hello = self.client.peer_hello
            self._edge_instance = hello.instance if hello is not None else None
            return

    def _wait_edge(self, start: SessionStart, deadline: float, d: Delivery) -> bool:
        """The edge vanished: wait for it, then resume the session; True when it came back as a new instance
        (a restarted edge, which holds nothing of the session)."""
        d.edge_restarts += 1
        before = self._edge_instance
        self.on_event("edge_lost", session=start.session)
        while time.monotonic() < deadline:
            self.edge_check()
            try:
                self.client.wait_ready(timeout_s=min(1.0, max(deadline - time.monotonic(), 0.1)))
                self._start_session(start, deadline)
                restarted = self._edge_instance != before
                self.on_event("edge_back", session=start.session, restarted=restarted)
                return restarted
            except PeerTimeout:
                continue
        raise DeliveryError(f"session {start.session}: the edge did not come back before the "
                            f"{start.deadline_s:g} s delivery deadline")

    def _await_burst_outcome(self, session: int, d: Delivery, timeout_s: float, deadline: float,
                             start: SessionStart) -> list[int] | object | None:
        """The missing list after a burst ([] when complete); None when the edge said nothing in time (or
        vanished and came back as the same instance); _RESTARTED when it came back restarted."""
        until = min(time.monotonic() + timeout_s, deadline)
        fresh = False  # the edge's SnrReport for this very burst came (its MissingRequest follows it)
        while time.monotonic() < until:
            msg = self.client.recv(timeout_s=min(0.5, max(until - time.monotonic(), 0.01)))
            if msg is None:
                self.edge_check()
                continue
            if isinstance(msg, PeerLost):
                return _RESTARTED if self._wait_edge(start, deadline, d) else None
            if getattr(msg, "session", session) != session:
                continue
            if isinstance(msg, SnrReport):
                d.snr_reports.append(msg)
                if msg.mean_snr_db is not None:
                    self.snr_db = msg.mean_snr_db
                fresh = msg.burst == d.bursts
                self.on_event("snr_report", **msg.model_dump(exclude={"type", "version", "req"}))
            elif isinstance(msg, MissingRequest):
                if not fresh:
                    # The answer to an earlier burst (it came after we gave up waiting for it): taking it as
                    # this burst's outcome would pair every later report with the wrong burst.
                    self.on_event("stale_missing", session=session, missing=msg.missing_count)
                    continue
                seqs = ranges_to_seqs(msg.ranges)
                self.on_event("missing", session=session, missing=msg.missing_count)
                return seqs if seqs or not msg.truncated else list(range(d.packets_total))
            elif isinstance(msg, TransferComplete):
                self.on_event("transfer_complete", session=session, packets_received=msg.packets_received)
                return []
        self.on_event("no_report", session=session)
        return None

    def _await_apply(self, session: int, timeout_s: float) -> ApplyResult:
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            msg = self.client.recv(timeout_s=0.5)
            if msg is None:
                self.edge_check()
            if isinstance(msg, ApplyResult) and msg.session == session:
                self.on_event("apply_result", **msg.model_dump(exclude={"type", "version", "req"}))
                return msg
            if isinstance(msg, PeerLost):
                self.on_event("edge_lost_applying", session=session, reason=msg.reason)
                raise _EdgeLost(session)
        raise DeliveryError(f"session {session}: no apply result within {timeout_s:.0f} s")
