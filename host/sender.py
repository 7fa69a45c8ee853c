"""Deliver one payload to the edge: session start, bursts over the radio, selective repeat, apply result.

The MCS of every burst comes from the SNR the edge measured on the previous one (the host never uses a
configured SNR). Packets the edge reports missing are sent again until it confirms the SHA-256, or the
delivery deadline passes (DeliveryError). A vanished edge is waited for and the session resumed.

With radio.frame v2 and an edge whose hello lists frame:v2, the transfer is the windowed, pipelined v2 one
(host/sender_v2.py); with an edge that does not list it, v1 packets exactly as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable

from radio.backends.base import RadioBackend
from radio.errors import BackendError
from radio.link import LinkSettings, packets_burst, pick_mcs
from radio.mcs import MCS_TABLE
from radio.reassembly import split
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerLost, PeerTimeout, RemoteError
from testbed.messages import (CAPABILITY_FRAME_V2, ERR_HELLO_REQUIRED, ERR_SESSION_BUSY, MAX_RANGES, ApplyResult,
                              BurstDone, MissingRequest, SessionAck, SessionStart, SnrReport,
                              TransferComplete, ranges_to_seqs, seqs_to_ranges)
from testbed.progress import progress
from host.delivery import Delivery, DeliveryError, _EdgeLost

__all__ = ["Delivery", "DeliveryError", "Sender"]


_RESTARTED = object()  # _await_burst_outcome: the edge came back as a new instance


def _ranges_text(seqs: list[int], limit: int = 8) -> str:
    """'0-3, 7, 9-12' (the first `limit` runs, then how many more)."""
    ranges = seqs_to_ranges(seqs)
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit])
    return text + (f" and {len(ranges) - limit} more runs" if len(ranges) > limit else "")


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
        if self.settings.frame == "v2":
            if self._edge_speaks_v2(deadline_s):
                return self._deliver_v2(payload, session, deadline_s, report_timeout_s, apply, apply_timeout_s,
                                        channel_snr_db, adapter_id)
            self.on_event("frame_fallback", session=session, frame="v1", reason="the edge does not list frame:v2")
            fallback = self._v1()
            try:
                return fallback.deliver(payload, session, deadline_s, report_timeout_s, apply, apply_timeout_s,
                                        channel_snr_db, adapter_id)
            finally:
                self.snr_db, self._edge_instance = fallback.snr_db, fallback._edge_instance
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

    def _edge_speaks_v2(self, deadline_s: float) -> bool:
        """Whether the edge's hello lists frame:v2 (waiting for its hello, within the deadline, when none came)."""
        hello = self.client.peer_hello
        if hello is None:
            try:
                hello = self.client.wait_ready(timeout_s=max(min(10.0, deadline_s), 0.1))
            except PeerTimeout:
                return False
        return CAPABILITY_FRAME_V2 in hello.capabilities

    def _v1(self) -> "Sender":
        """This sender with radio.frame v1 settings (a v2 MCS name becomes 'auto'), sharing its SNR estimate."""
        mcs = self.settings.mcs if not self.settings.mcs.startswith("ldpc-") else "auto"
        fallback = Sender(self.client, self.tx, dataclasses.replace(self.settings, frame="v1", mcs=mcs),
                          self.backend_name, self.on_event, self.edge_check)
        fallback.snr_db, fallback._edge_instance = self.snr_db, self._edge_instance
        return fallback

    def _deliver_v2(self, payload: bytes, session: int, deadline_s: float, report_timeout_s: float, apply: bool,
                    apply_timeout_s: float, channel_snr_db: float | None, adapter_id: str | None) -> Delivery:
        """The frame v2 delivery (host/sender_v2.py); session start, edge waits and apply as in v1."""
        from host.sender_v2 import SenderV2

        t0 = time.monotonic()
        v2 = SenderV2(self)
        start = v2.session_start(payload, session, deadline_s, apply, channel_snr_db, adapter_id)
        d = Delivery(session, len(payload), 0, frame="v2")
        deadline = t0 + deadline_s
        self._start_session(start, deadline)
        self.on_event("session", session=session, snr_db_set=channel_snr_db, apply=apply, payload_bytes=len(payload),
                      frame="v2")
        while True:
            v2.transfer(payload, start, d, t0, report_timeout_s)
            d.delivered = True
            if not apply:
                break
            try:
                d.apply = self._await_apply(session, apply_timeout_s)
                break
            except _EdgeLost:  # as in v1: a restarted edge holds nothing of the session, send it again
                d.delivered = False
                self._wait_edge(start, deadline, d)
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
