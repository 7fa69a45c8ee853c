"""Deliver one payload to a fleet: a fountain-coded broadcast, repair symbols until every edge is done.

The payload is cut into RaptorQ source symbols and sent over one transmitter that every edge hears (a
BroadcastTx over the IQ cables, or one real radio). After each burst every edge reports what it measured and
how many symbols it holds; the next burst carries as many fresh symbols as the furthest-behind pending edge
still needs (scaled by the share of its packets that got through), at the MCS the fleet rule picks from the
pending edges' measured SNRs. Edges that finish drop out of the rule, so with a percentile rule the weakest
edges get a top-up at their own MCS once the others are done. An edge that vanishes is not waited for; when it
comes back (restarted or not) it is sent the session again and completes from the symbols still to come.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from radio.backends.base import RadioBackend
from radio.errors import BackendError
from radio.fountain import FountainEncoder, symbol_bytes_for, symbol_id
from radio.link import LinkSettings, packets_burst, pick_mcs
from radio.mcs import MCS_TABLE, Mcs
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerLost
from testbed.errors import AirLoraError
from testbed.messages import (MAX_RANGES, ApplyResult, BurstDone, Error, FountainProgress, FountainStart, SessionAck,
                              SnrReport, TransferComplete, seqs_to_ranges)
from testbed.sections.fleet import FleetConfig

ESI_SPACE = 1 << 24
"""The packet header's `total` in a fountain session: the ESI (its `seq`) is below it."""
RESEND_START_S = 1.0  # a session start not acknowledged is sent again this often
START_WAIT_S = 10.0  # the first burst waits this long at most for every edge to take the session


class FleetDeliveryError(AirLoraError):
    """A fleet delivery could not start (nothing to send, no edge took the session)."""


def rule_snr_db(snrs: list[float], rule: str, percentile: float) -> float | None:
    """The SNR the fleet's MCS is picked for: the worst edge's, or a percentile of the edges' (None: none known)."""
    values = [s for s in snrs if s is not None and math.isfinite(s)]
    if not values:
        return None
    return float(min(values)) if rule == "worst" else float(np.percentile(values, percentile))


@dataclass
class FleetEdgeLink:
    """One edge as the host reaches it: its name, its control client, and whether it can still come back."""

    name: str
    client: ControlClient
    gone: Callable[[], bool] = lambda: False  # True when it can never come back (a local process that exited)


@dataclass
class EdgeState:
    """One edge's side of a fleet delivery, measured."""

    name: str
    needed: int
    received: int = 0
    snr_db: float | None = None
    acked: bool = False  # it holds the session now
    done: bool = False
    done_s: float | None = None  # since the delivery started
    applied: bool = False
    apply: ApplyResult | None = None
    refused: str | None = None  # why it refused the session
    lost: int = 0  # times it vanished
    lost_since: float | None = None
    last_start: float = -1e9
    success: float = 1.0  # share of the last burst's packets it decoded
    last_burst: int = 0
    history: list[tuple[float, int]] = field(default_factory=list)  # (s since start, symbols held)

    def row(self) -> dict:
        a = self.apply
        return {"edge": self.name, "snr_db_measured": self.snr_db, "symbols_received": self.received,
                "symbols_needed": self.needed, "done": self.done, "done_s": self.done_s, "lost": self.lost,
                "installed": a.installed if a else None, "edge_accuracy": a.accuracy if a else None,
                "apply_reason": a.reason if a else self.refused,
                "probe_max_abs_err": a.probe_max_abs_err if a else None}


@dataclass
class FleetDelivery:
    """What one fleet delivery did."""

    session: int
    payload_bytes: int
    source_symbols: int
    edges: dict[str, EdgeState]
    bursts: int = 0
    symbols_sent: int = 0
    samples_sent: int = 0
    mcs_per_burst: list[str] = field(default_factory=list)
    burst_symbols: list[int] = field(default_factory=list)
    snr_reports: list[SnrReport] = field(default_factory=list)
    wall_s: float = 0.0

    def airtime_s(self, sample_rate_hz: float) -> float:
        return self.samples_sent / sample_rate_hz

    @property
    def all_done(self) -> bool:
        return all(e.done for e in self.edges.values())


class FountainSender:
    """The host's half of a fleet delivery over one control client per edge and one broadcast transmitter."""

    def __init__(self, edges: list[FleetEdgeLink], tx: RadioBackend, settings: LinkSettings, backend_name: str,
                 fleet: FleetConfig, on_event: Callable[..., None] | None = None) -> None:
        if not edges:
            raise FleetDeliveryError("a fleet delivery needs at least one edge")
        self.links = {e.name: e for e in edges}
        self.tx, self.settings, self.backend_name, self.fleet = tx, settings, backend_name, fleet
        self.on_event = on_event or (lambda kind, **f: None)
        self.symbol_bytes = symbol_bytes_for(settings.packet_payload_bytes)
        self.snr_db: dict[str, float | None] = {e.name: None for e in edges}  # each edge's latest measurement

    def fleet_snr_db(self) -> float | None:
        """The SNR the rule picks for over every edge's latest measurement."""
        return rule_snr_db(list(self.snr_db.values()), self.fleet.mcs_rule, self.fleet.percentile)

    def deliver(self, payload: bytes, session: int, deadline_s: float, *, apply: bool = True,
                evaluate: bool = True, apply_timeout_s: float = 600.0, adapter_id: str | None = None,
                channel_snr_db: dict[str, float | None] | None = None) -> FleetDelivery:
        """Broadcast payload until every edge is done (and, with apply, has reported its install), or the deadline."""
        t0 = time.monotonic()
        enc = FountainEncoder(payload, self.symbol_bytes)
        k = enc.source_count
        d = FleetDelivery(session, len(payload), k, {n: EdgeState(n, k) for n in self.links})
        sha = hashlib.sha256(payload).hexdigest()
        starts = {n: FountainStart(
            session=session, payload_bytes=len(payload), symbol_bytes=self.symbol_bytes, source_symbols=k,
            mcs=self._mcs(list(self.links)).name, payload_sha256=sha, deadline_s=deadline_s,
            sample_rate_hz=self.settings.sample_rate_hz, backend=self.backend_name, adapter_id=adapter_id,
            apply=apply, evaluate=evaluate, channel_snr_db=(channel_snr_db or {}).get(n)) for n in self.links}
        self.on_event("fleet_session", session=session, payload_bytes=len(payload), source_symbols=k,
                      symbol_bytes=self.symbol_bytes, edges=list(self.links), apply=apply)
        deadline = t0 + deadline_s
        while time.monotonic() < min(t0 + START_WAIT_S, deadline):  # let every edge take the session first
            self._pump(d, starts, t0, timeout_s=0.05)
            if all(e.acked or e.refused is not None or self.links[e.name].gone() for e in d.edges.values()):
                break
        while True:
            self._pump(d, starts, t0, timeout_s=0.0)
            if self._finished(d, apply):
                break
            now = time.monotonic()
            done_times = [t0 + e.done_s for e in d.edges.values() if e.done and e.done_s is not None]
            if now >= max([deadline] + ([max(done_times) + apply_timeout_s] if apply and done_times else [])):
                break
            pending = [e for e in d.edges.values() if not e.done and e.acked and e.refused is None]
            if not pending or now >= deadline:
                self._pump(d, starts, t0, timeout_s=0.1)
                continue
            self._burst(d, enc, pending, deadline, t0, starts)
        d.wall_s = time.monotonic() - t0
        self.on_event("fleet_delivery", session=session, bursts=d.bursts, symbols_sent=d.symbols_sent,
                      airtime_s=d.airtime_s(self.settings.sample_rate_hz),
                      edges={n: e.row() for n, e in d.edges.items()})
        return d

    # --- the loop's parts ---------------------------------------------------------------------------------------
    def _finished(self, d: FleetDelivery, apply: bool) -> bool:
        """Every edge done (and applied), or the ones not done are gone for good or lost past rejoin_wait_s."""
        now = time.monotonic()
        for e in d.edges.values():
            if e.refused is not None or (e.done and (e.applied or not apply)):
                continue
            if self.links[e.name].gone():
                continue
            others_finished = all(o.done or o is e or o.refused is not None for o in d.edges.values())
            if e.lost_since is not None and others_finished and now - e.lost_since > self.fleet.rejoin_wait_s:
                continue
            return False
        return True

    def _mcs(self, names: list[str]) -> Mcs:
        snr = rule_snr_db([self.snr_db[n] for n in names], self.fleet.mcs_rule, self.fleet.percentile)
        if snr is None and self.settings.mcs == "auto":
            return MCS_TABLE[0]  # nothing measured yet: the most robust (every edge should catch the first burst)
        return pick_mcs(self.settings, snr)

    def _burst_size(self, pending: list[EdgeState]) -> int:
        want = max(math.ceil(max(e.needed - e.received, 1) / max(e.success, 0.05)) for e in pending)
        return int(min(max(want, self.fleet.min_burst_symbols), self.fleet.max_burst_symbols))

    def _burst(self, d: FleetDelivery, enc: FountainEncoder, pending: list[EdgeState], deadline: float, t0: float,
               starts: dict[str, FountainStart]) -> None:
        mcs = self._mcs([e.name for e in pending])
        symbols = enc.take(self._burst_size(pending))
        chunks = {symbol_id(s)[1]: s for s in symbols}
        iq = packets_burst(chunks, ESI_SPACE, d.session, mcs, self.settings)
        first = self.tx.clock_samples
        try:
            self.tx.tx(iq)
        except BackendError as exc:  # a single real radio failing: nothing went out
            self.on_event("tx_failed", session=d.session, error=str(exc))
            self._pump(d, starts, t0, timeout_s=0.5)
            return
        d.bursts += 1
        d.symbols_sent += len(symbols)
        d.samples_sent += iq.size
        d.mcs_per_burst.append(mcs.name)
        d.burst_symbols.append(len(symbols))
        airtime = iq.size / self.settings.sample_rate_hz
        self.on_event("burst", session=d.session, burst=d.bursts, mcs=mcs.name, packets=len(symbols),
                      samples=iq.size, airtime_s=airtime, first_esi=min(chunks), pending=[e.name for e in pending])
        note = BurstDone(session=d.session, burst=d.bursts, first_sample=first, samples_sent=iq.size,
                         ranges=seqs_to_ranges(chunks)[:MAX_RANGES], airtime_s=airtime)
        waiting: dict[str, int] = {}  # edge -> its loss count when told (a loss since: it will not answer)
        for e in pending:
            self.links[e.name].client.send(note)
            waiting[e.name] = e.lost
        until = min(time.monotonic() + self.fleet.report_timeout_s + airtime, deadline)
        while waiting and time.monotonic() < until:
            self._pump(d, starts, t0, timeout_s=0.05)
            waiting = {n: lost for n, lost in waiting.items()
                       if d.edges[n].lost == lost and not d.edges[n].done and d.edges[n].last_burst < d.bursts}

    def _pump(self, d: FleetDelivery, starts: dict[str, FountainStart], t0: float, timeout_s: float) -> None:
        """Handle what every edge said; (re)send the session to edges that lack it; wait up to timeout_s."""
        now = time.monotonic()
        for name, link in self.links.items():
            e = d.edges[name]
            if not e.acked and e.refused is None and now - e.last_start >= RESEND_START_S and link.client.peer_alive:
                e.last_start = now
                link.client.send(starts[name])
        end = now + timeout_s
        while True:
            got = False
            for name, link in self.links.items():
                msg = link.client.recv(0.0)
                while msg is not None:
                    got = True
                    self._on_message(d, d.edges[name], msg, t0)
                    msg = link.client.recv(0.0)
            if got or time.monotonic() >= end:
                return
            time.sleep(min(0.01, max(end - time.monotonic(), 0.0)))

    def _on_message(self, d: FleetDelivery, e: EdgeState, msg, t0: float) -> None:
        if isinstance(msg, PeerLost):
            if e.acked or e.lost_since is None:
                e.lost += 1
                e.lost_since = time.monotonic()
            e.acked = False
            self.on_event("edge_lost", session=d.session, edge=e.name, reason=msg.reason)
            return
        if getattr(msg, "session", d.session) != d.session:
            return
        if isinstance(msg, SessionAck):
            if msg.ready:
                e.acked, e.lost_since = True, None
                self.on_event("edge_joined", session=d.session, edge=e.name)
            else:
                e.refused = msg.reason or "refused"
                self.on_event("edge_refused", session=d.session, edge=e.name, reason=e.refused)
        elif isinstance(msg, SnrReport):
            d.snr_reports.append(msg)
            if msg.mean_snr_db is not None:
                self.snr_db[e.name] = e.snr_db = msg.mean_snr_db
            self.on_event("snr_report", edge=e.name, **msg.model_dump(exclude={"type", "version", "req"}))
        elif isinstance(msg, FountainProgress):
            if msg.burst and msg.burst <= d.bursts:
                sent = max(d.burst_symbols[msg.burst - 1], 1)
                gained = max(msg.symbols_received - e.received, 0)
                e.success = min(max(gained / sent, 0.0), 1.0) if not msg.done else e.success
            e.last_burst = max(e.last_burst, msg.burst)
            # a restarted edge starts from zero: take its count as it is
            e.received = msg.symbols_received
            t = time.monotonic() - t0
            e.history.append((round(t, 3), msg.symbols_received))
            if msg.done and not e.done:
                e.done, e.done_s = True, round(t, 3)
            elif not msg.done and e.done and not e.applied:  # it restarted before it installed: once more
                e.done, e.done_s = False, None
            self.on_event("fleet_progress", session=d.session, edge=e.name, burst=msg.burst,
                          received=msg.symbols_received, needed=msg.symbols_needed, done=msg.done,
                          snr_db=msg.mean_snr_db)
        elif isinstance(msg, TransferComplete):
            if not e.done:
                e.done, e.done_s = True, round(time.monotonic() - t0, 3)
        elif isinstance(msg, ApplyResult):
            e.apply, e.applied = msg, True
            self.on_event("apply_result", edge=e.name, **msg.model_dump(exclude={"type", "version", "req"}))
        elif isinstance(msg, Error):
            self.on_event("edge_error", session=d.session, edge=e.name, code=msg.code, message=msg.message)
            if msg.code in ("no_session", "hello_required"):
                e.acked = False  # it lost the session (restarted): send it again
