"""The windowed, pipelined v2 sender as a pure state machine (docs/design/link_v2.md section 4).

`ArqSender` decides what each burst carries; the caller moves samples and messages and passes the time in.
It reads no clock and opens no socket, so the in-process `airlora link` and `host/sender.py` share it.

Byte ranges are half-open `[start, stop)` (radio/intervals.py); convert the wire's inclusive ranges with
`intervals.from_inclusive` and a report's failed codeword runs with `codeword_ranges`.

State: `frontier` (first byte never sent), `outstanding` (bursts awaiting a report), `resend` (bytes reported
failed, timed out or listed missing) and `acked`. Invariant: [0, frontier) = acked | resend | in flight.

- `next_plan` fills a burst of `burst_airtime_s` at the MCS the selector picks from the latest report's
  codeword SNRs: first from `resend`, cut at the MCS's codeword length L (one run per gap; MAP codewords
  counted with the burst module's exact rule), then from `frontier`. The selector gets a `TailInfo` when what
  is left to send would fit in TAIL_BURSTS bursts at the fastest MCS (the selector applies its own rule).
- Probing: until a report of a detected burst comes back, every burst is a probe of `probe_airtime_s` at
  `probe_mcs` and at most one burst awaits a report; then up to `window_bursts` do. Bursts picked from the
  codeword SNRs of a probe that saw fading (their range exceeds `ramp_spread_db`) last at most `ramp_airtime_s`:
  two or three fading blocks misjudge the MCS, and an interleaved burst loses its codewords together; the next
  pick sees the short burst's SNRs.
- FLAG_LAST marks the burst after which nothing is left to send (frontier at the end, resend empty): the end
  of a pass, which the edge answers with its missing list.
- A list written before any burst of this sender (`on_held`: a resumed session, a failed SHA-256) acks every
  byte it omits, past the frontier too, so a restarted host sends only what the edge lacks. A resume's list
  carries the edge's `last_burst`: later bursts are numbered from last_burst + 1, so that a dead host's late
  burst, reported under its own number, never settles one of this sender's (its report is stale).
- Missing lists: the edge lists every byte it lacks, but it cannot know about bursts it has not processed
  yet. `on_missing(ranges, through_burst)` therefore settles the outstanding bursts up to `through_burst` (the
  list states their outcome) and keeps the newer ones in flight: their bytes are neither resent nor acked.
  Bytes below the frontier that the list omits are acked. The same "never resend what is in flight" rule
  applies when a report or a timeout returns bytes that a newer burst carries again. This assumes the edge's
  messages arrive in the order it sent them (reports in burst order, a list after the reports it covers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from radio import airtime
from radio.burst import FLAG_LAST, FLAG_PROBE, CodewordRun, codeword_bytes, map_codewords_for
from radio.burst_tx import BurstPlan
from radio.errors import RadioError
from radio.intervals import IntervalSet
from radio.link_adaptation import PROBE_SPREAD_DB, TailInfo
from radio.mcs import LDPC_MCS_TABLE, Mcs, by_name

PROBE_MCS = "ldpc-qpsk-1/2"
MAX_RUNS_PER_BURST = 1024  # 9-byte worst-case varint runs: <= 243 MAP codewords (u8); BurstDone lists <= 4096
MAX_BURST_NUMBER = (1 << 32) - 1  # the SIG's burst field is a u32 (radio/burst.py)
TAIL_BURSTS = 2  # pass a TailInfo when what is left would fit in this many bursts at the fastest MCS
RTT_GAIN = 0.2  # weight of a new round-trip sample in the running estimate
RAMP_AIRTIME_S = 0.25  # longest burst picked from a fading probe's codeword SNRs (ArqSender.ramp_airtime_s)


class BurstSettings(Protocol):
    """The waveform numbers the airtime model needs (radio.link.LinkSettings has them)."""

    sample_rate_hz: float
    samples_per_symbol: int
    rolloff: float


class Selector(Protocol):
    """An MCS choice per burst and an outer loop per report (link_adaptation.McsSelector, FixedMcs)."""

    last_predicted_bler: float | None

    def pick(self, codeword_snr_db: np.ndarray, tail: TailInfo | None = None) -> Mcs: ...

    def update(self, observed_bler: float, predicted_bler: float | None = None) -> float: ...


def codeword_ranges(runs: Iterable[CodewordRun], bytes_per_codeword: int,
                    payload_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges the codewords of `runs` carry, one per run, clipped to the payload."""
    out = []
    for run in runs:
        stop = min(run.offset + run.count * bytes_per_codeword, payload_bytes)
        if stop > run.offset:
            out.append((run.offset, stop))
    return out


@dataclass(frozen=True)
class BurstOutcome:
    """What the edge reports about one burst (the parts of a BurstReport the sender acts on)."""

    burst: int
    detected: bool
    codeword_snr_db: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(codewords,) float SNR per data codeword, dB (empty when not detected)"""
    codewords_ok: int = 0
    failed: tuple[tuple[int, int], ...] = ()
    """half-open byte ranges of the failed codewords (codeword_ranges of the report's failed runs)"""


@dataclass
class ArqStats:
    """What the sender did, counted."""

    bursts: int = 0
    probes: int = 0
    codewords_sent: int = 0
    codewords_ok: int = 0
    map_codewords: int = 0
    bytes_resent: int = 0
    """bytes taken from the resend set (excluding a re-cut codeword's overhang)"""
    timeouts: int = 0
    undetected: int = 0
    stale_reports: int = 0
    """reports of bursts already settled by a timeout, a missing list or a restart"""
    mcs_per_burst: list[str] = field(default_factory=list)


@dataclass
class InFlight:
    """An outstanding burst: its plan, the bytes its codewords carry, when its air ends and its report is due."""

    plan: BurstPlan
    ranges: list[tuple[int, int]]
    air_end_s: float
    deadline_s: float
    predicted_bler: float | None
    """the selector's prediction at pick time (None for a probe: the outer loop skips it)"""


class ArqSender:
    """Plans v2 bursts for one payload from the edge's reports, missing lists and timeouts."""

    ramp_airtime_s: float = RAMP_AIRTIME_S
    """longest burst picked from a fading probe's codeword SNRs (then burst_airtime_s): a probe's two or three
    fading blocks misjudge the MCS, and an interleaved burst at too fast an MCS loses all its codewords; the
    next pick sees ~60-190 codeword SNRs. Measured (Rician K = 6 dB, 20 ms blocks, 200 kB, interleave 125000
    symbols, goodput / Shannon at 10 / 15 / 20 dB, seeds 1-16, probe_spread_db 0.8): no ramp 0.411 / 0.463 /
    0.506, 0.25 s 0.434 / 0.477 / 0.500, 0.375 s 0.417 / 0.490 / 0.515 (both spread rules 1.2 dB: 0.125 s 0.362 /
    0.455 / 0.490, 0.5 s 0.414 / 0.482 / 0.511); held-out seeds 17-32: before (1 s, spread 2 dB) 0.385 / 0.455 / 0.496,
    0.25 s 0.400 / 0.478 / 0.518. Over AWGN a probe does not spread: no ramp, bursts as before"""
    ramp_spread_db: float = PROBE_SPREAD_DB
    """a probe whose codeword SNRs range wider than this saw fading (the selector's probe_spread_db): over AWGN
    the ramp would only add bursts"""
    _ramp = False  # the latest codeword SNRs (those the selector picks from) are a fading probe's

    def __init__(self, payload_bytes: int, settings: BurstSettings, selector: Selector, window_bursts: int = 2,
                 session: int = 0, burst_airtime_s: float = 1.0, probe_airtime_s: float = 0.05,
                 report_timeout_s: float = 2.0, probe_mcs: Mcs | None = None, rtt_s: float = 0.1) -> None:
        """rtt_s: first guess of the report round trip (air end to report), refined by on_report(now_s=...)."""
        if payload_bytes < 0 or window_bursts < 1 or burst_airtime_s <= 0 or probe_airtime_s <= 0:
            raise RadioError(f"need payload_bytes >= 0, window_bursts >= 1 and positive airtimes, got "
                             f"{payload_bytes}, {window_bursts}, {burst_airtime_s}, {probe_airtime_s}")
        self.payload_bytes = payload_bytes
        self.settings = settings
        self.selector = selector
        self.window_bursts = window_bursts
        self.session = session
        self.burst_airtime_s = burst_airtime_s
        self.probe_airtime_s = probe_airtime_s
        self.report_timeout_s = report_timeout_s
        self.probe_mcs = probe_mcs or by_name(PROBE_MCS)
        self.rtt_s = rtt_s
        self.frontier = 0
        self.outstanding: dict[int, InFlight] = {}
        self.resend = IntervalSet()
        self.acked = IntervalSet()
        self.stats = ArqStats()
        self.probing = True
        self._next_burst = 0
        self._air_free_s = float("-inf")
        self._snr_db = np.zeros(0)
        fastest = LDPC_MCS_TABLE[-1]
        self._tail_bytes = TAIL_BURSTS * codeword_bytes(fastest) * airtime.max_burst_codewords(
            settings, fastest, burst_airtime_s)

    # ----- state -----

    @property
    def done(self) -> bool:
        """Every byte acked, nothing in flight or waiting."""
        return not self.outstanding and not self.resend and self.acked.covers(0, self.payload_bytes)

    @property
    def window(self) -> int:
        """Bursts that may await a report now: 1 while probing."""
        return 1 if self.probing else self.window_bursts

    @property
    def to_send_bytes(self) -> int:
        """Bytes waiting to be sent: the resend set plus everything past the frontier."""
        return self.resend.covered_bytes + self.payload_bytes - self.frontier

    # ----- planning -----

    def next_plan(self, now_s: float) -> BurstPlan | None:
        """The next burst to send at now_s; None when the window is full or nothing is waiting."""
        if len(self.outstanding) >= self.window or self.to_send_bytes == 0:
            return None
        if self.probing:
            mcs, airtime_s, predicted = self.probe_mcs, self.probe_airtime_s, None
        else:
            tail = TailInfo(self.to_send_bytes, self.rtt_s) if self.to_send_bytes <= self._tail_bytes else None
            mcs, airtime_s = self.selector.pick(self._snr_db, tail), self.burst_airtime_s
            if self._ramp:
                airtime_s = min(airtime_s, self.ramp_airtime_s)
            predicted = self.selector.last_predicted_bler
        size = codeword_bytes(mcs)
        runs = self._fit(mcs, self._cut(size, airtime.max_burst_codewords(self.settings, mcs, airtime_s)), airtime_s)
        ranges = codeword_ranges(runs, size, self.payload_bytes)
        for start, stop in ranges:
            self.stats.bytes_resent += self.resend.remove(start, stop)
        self.frontier = max(self.frontier, ranges[-1][1])
        flags = (FLAG_PROBE if self.probing else 0) | (FLAG_LAST if self.to_send_bytes == 0 else 0)
        plan = BurstPlan(self.session, self._next_burst, mcs, tuple(runs), self.payload_bytes, flags)
        self._next_burst += 1
        air_end_s = max(now_s, self._air_free_s) + plan.samples(self.settings) / self.settings.sample_rate_hz
        self._air_free_s = air_end_s
        self.outstanding[plan.burst] = InFlight(plan, ranges, air_end_s, air_end_s + self.report_timeout_s,
                                                 predicted)
        self._count(plan)
        return plan

    def _cut(self, size: int, capacity: int) -> list[CodewordRun]:
        """Up to `capacity` codewords of `size` bytes over the resend ranges, then the frontier, in byte order."""
        runs: list[CodewordRun] = []
        cursor = total = 0
        for start, stop in [*self.resend, (self.frontier, self.payload_bytes)]:
            offset = max(start, cursor)
            if offset >= stop:
                continue
            if len(runs) == MAX_RUNS_PER_BURST and offset != cursor:
                break
            count = min(-(-(stop - offset) // size), capacity - total)
            if runs and offset == cursor:
                runs[-1] = CodewordRun(runs[-1].offset, runs[-1].count + count)  # contiguous: one run
            else:
                runs.append(CodewordRun(offset, count))
            total += count
            cursor = offset + count * size
            if total == capacity:
                break
        return runs

    def _fit(self, mcs: Mcs, runs: list[CodewordRun], airtime_s: float) -> list[CodewordRun]:
        """Drop trailing codewords until data + MAP codewords fit airtime_s (one codeword always goes)."""
        size, budget = codeword_bytes(mcs), airtime_s * self.settings.sample_rate_hz
        while True:
            count, maps = sum(r.count for r in runs), map_codewords_for(runs, size)
            if count == 1 or airtime.burst_samples_v2(self.settings, mcs, count, maps) <= budget:
                return runs
            keep = max(1, min(count - 1, airtime.max_burst_codewords(self.settings, mcs, airtime_s, maps)))
            runs = _first_codewords(runs, keep)

    def _count(self, plan: BurstPlan) -> None:
        s = self.stats
        s.bursts += 1
        s.probes += bool(plan.flags & FLAG_PROBE)
        s.codewords_sent += plan.codewords
        s.map_codewords += plan.map_codewords
        s.mcs_per_burst.append(plan.mcs.name)

    # ----- feedback -----

    def on_report(self, report: BurstOutcome, now_s: float | None = None) -> None:
        """A burst's outcome: ok bytes are acked, failed ones resent; the selector's outer loop updates.

        now_s (when the report arrived) refines the round-trip estimate handed to the tail rule.
        """
        flight = self.outstanding.pop(report.burst, None)
        if flight is None:
            self.stats.stale_reports += 1
            return
        if now_s is not None and now_s >= flight.air_end_s:
            self.rtt_s += RTT_GAIN * (now_s - flight.air_end_s - self.rtt_s)
        if not report.detected:
            self.stats.undetected += 1
            self._give_back(flight.ranges)
            return
        self.probing = False
        snr = np.asarray(report.codeword_snr_db, float)
        if snr.size:
            self._snr_db = snr
            self._ramp = bool(flight.plan.flags & FLAG_PROBE) and float(np.ptp(snr)) > self.ramp_spread_db
        carried = IntervalSet(flight.ranges)
        failed = IntervalSet(part for start, stop in report.failed for part in carried.overlapping(start, stop))
        for start, stop in flight.ranges:
            for a, b in _gaps(failed, start, stop):
                self.acked.add(a, b)
                self.resend.remove(a, b)
        self._give_back(failed)
        self.stats.codewords_ok += report.codewords_ok
        if flight.predicted_bler is not None:  # a probe's MCS was not the selector's pick
            observed = 1.0 - report.codewords_ok / flight.plan.codewords
            self.selector.update(min(max(observed, 0.0), 1.0), flight.predicted_bler)

    def on_timeout(self, burst: int) -> None:
        """No report for `burst` in time: its bytes go back to resend (unless acked or carried again)."""
        flight = self.outstanding.pop(burst, None)
        if flight is not None:
            self.stats.timeouts += 1
            self._give_back(flight.ranges)

    def expired(self, now_s: float) -> list[int]:
        """Outstanding bursts whose report is overdue at now_s (air end + report_timeout_s), oldest first."""
        return [b for b, flight in self.outstanding.items() if now_s > flight.deadline_s]

    def on_missing(self, ranges: Iterable[tuple[int, int]], through_burst: int | None = None) -> None:
        """The edge's global list of missing [start, stop) ranges, written after it processed `through_burst`.

        It settles the outstanding bursts up to through_burst (None: every burst sent so far); bytes of newer
        outstanding bursts stay in flight. Below the frontier, listed bytes become the resend set and the
        others are acked; listed bytes at or past the frontier are simply not sent yet.
        """
        for burst in [b for b in self.outstanding if through_burst is None or b <= through_burst]:
            del self.outstanding[burst]
        self._settle(ranges, self.frontier)

    def on_held(self, ranges: Iterable[tuple[int, int]], last_burst: int | None = None) -> None:
        """The edge's list of the [start, stop) ranges it lacks, written before it processed any burst now in flight
        (it answers a resumed session with one, and a payload that failed its SHA-256 with everything): every
        other byte is held there, wherever it is, so it is acked and never sent; the listed bytes are sent
        (those of bursts in flight wait for their reports) and the frontier moves to the end of the payload.

        last_burst (a resume): the next burst is numbered last_burst + 1 at least; RadioError when no u32 is left.
        """
        if last_burst is not None:
            if not 0 <= last_burst < MAX_BURST_NUMBER:
                raise RadioError(f"last_burst {last_burst} leaves no burst number (the SIG's burst is a u32)")
            self._next_burst = max(self._next_burst, last_burst + 1)
        self._settle(ranges, self.payload_bytes)
        self.frontier = self.payload_bytes

    def _settle(self, ranges: Iterable[tuple[int, int]], upto: int) -> None:
        """Below `upto`: the listed [start, stop) ranges become the resend set (less what is in flight), every
        other byte is acked."""
        missing = IntervalSet()
        for start, stop in ranges:
            if min(stop, upto) > start:
                missing.add(start, min(stop, upto))
        self.acked = IntervalSet(missing.missing(upto))
        self.resend = self._not_in_flight(missing)

    def restart(self) -> None:
        """The edge restarted: nothing is in flight or acked any more; everything sent is missing until a fresh
        missing list (on_missing) says otherwise."""
        self.outstanding.clear()
        self.acked.clear()
        self.resend = IntervalSet([(0, self.frontier)] if self.frontier else [])

    def _give_back(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Put bytes back into resend, except those acked or carried by a burst still in flight."""
        back = IntervalSet(ranges)
        for start, stop in list(back):
            for a, b in self.acked.overlapping(start, stop):
                back.remove(a, b)
        self.resend.update(self._not_in_flight(back))

    def _not_in_flight(self, ranges: IntervalSet) -> IntervalSet:
        """`ranges` without the bytes of outstanding bursts (modified in place and returned)."""
        for flight in self.outstanding.values():
            for start, stop in flight.ranges:
                ranges.remove(start, stop)
        return ranges


def _first_codewords(runs: list[CodewordRun], keep: int) -> list[CodewordRun]:
    """The runs cut after their first `keep` codewords."""
    out = []
    for run in runs:
        if keep <= 0:
            break
        out.append(CodewordRun(run.offset, min(run.count, keep)))
        keep -= run.count
    return out


def _gaps(covered: IntervalSet, start: int, stop: int) -> list[tuple[int, int]]:
    """The parts of [start, stop) that `covered` does not cover."""
    out, cursor = [], start
    for a, b in covered.overlapping(start, stop):
        if a > cursor:
            out.append((cursor, a))
        cursor = b
    if cursor < stop:
        out.append((cursor, stop))
    return out
