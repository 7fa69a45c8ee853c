"""ArqSender against a simulated edge in pure Python: no radio, no samples, only plans and reports."""

from __future__ import annotations

import tracemalloc
from collections import deque

import numpy as np
import pytest

from radio import airtime
from radio.arq import RAMP_AIRTIME_S, ArqSender, BurstOutcome, codeword_ranges
from radio.burst import FLAG_LAST, FLAG_PROBE, CodewordRun, codeword_bytes, map_codewords_for
from radio.burst_tx import BurstPlan
from radio.intervals import IntervalSet
from radio.link import LinkSettings
from radio.link_adaptation import FixedMcs, McsSelector, TailInfo
from radio.mcs import Mcs, by_name

SETTINGS = LinkSettings(sample_rate_hz=1e6, samples_per_symbol=4, rolloff=0.15)
QPSK12 = by_name("ldpc-qpsk-1/2")  # L = 119, the probe's MCS
QAM16_34 = by_name("ldpc-16qam-3/4")  # L = 180
QAM64_56 = by_name("ldpc-64qam-5/6")  # L = 200
PROBE_CODEWORDS = 11  # a 50 ms probe at qpsk-1/2, fs 1 MHz, sps 4, roll-off 0.15
PROBE_BYTES = PROBE_CODEWORDS * 119


class Scripted:
    """A selector that returns the scripted MCSs in turn (then the last one) and records its calls."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)
        self.tails: list[TailInfo | None] = []
        self.updates: list[tuple[float, float | None]] = []
        self.last_predicted_bler: float | None = 0.05

    def pick(self, codeword_snr_db: np.ndarray, tail: TailInfo | None = None) -> Mcs:
        self.tails.append(tail)
        return by_name(self.names.pop(0) if len(self.names) > 1 else self.names[0])

    def update(self, observed_bler: float, predicted_bler: float | None = None) -> float:
        self.updates.append((observed_bler, predicted_bler))
        return 0.0


def _merged(starts: np.ndarray, stops: np.ndarray) -> list[tuple[int, int]]:
    """Touching ranges (in ascending order) joined."""
    if starts.size == 0:
        return []
    brk = np.flatnonzero(starts[1:] != stops[:-1]) + 1
    first, last = np.r_[0, brk], np.r_[brk - 1, starts.size - 1]
    return list(zip(starts[first].tolist(), stops[last].tolist()))


class SimEdge:
    """Receives plans: loses codewords (seeded) and reports, keeps what it received as an IntervalSet."""

    def __init__(self, payload_bytes: int, codeword_loss: float = 0.0, report_loss: float = 0.0, seed: int = 0,
                 snr_db: float = 20.0) -> None:
        self.payload_bytes = payload_bytes
        self.codeword_loss, self.report_loss = codeword_loss, report_loss
        self.rng = np.random.default_rng(seed)
        self.snr_db = snr_db
        self.received = IntervalSet()
        self.delivered_bytes = 0  # payload bytes in codewords that decoded
        self.duplicate_bytes = 0  # of those, bytes it already had
        self.lost = IntervalSet()  # every byte of a codeword that failed
        self.unrepaired = IntervalSet()  # lost bytes no later burst has carried yet
        self.reports_lost = 0

    def receive(self, plan: BurstPlan) -> BurstOutcome | None:
        """The plan's outcome, or None when its report is lost."""
        starts = plan.offsets()
        stops = np.minimum(starts + codeword_bytes(plan.mcs), self.payload_bytes)
        self.unrepaired.difference_update(_merged(starts, stops))
        ok = self.rng.random(starts.size) >= self.codeword_loss
        for a, b in _merged(starts[ok], stops[ok]):
            gained = self.received.add(a, b)
            self.delivered_bytes += b - a
            self.duplicate_bytes += (b - a) - gained
        failed = _merged(starts[~ok], stops[~ok])
        self.lost.update(failed)
        self.unrepaired.update(failed)
        if self.rng.random() < self.report_loss:
            self.reports_lost += 1
            return None
        snr = np.full(plan.codewords, self.snr_db)
        return BurstOutcome(plan.burst, True, snr, int(ok.sum()), tuple(failed))


def simulate(sender: ArqSender, edge: SimEdge, missing_lists: bool = True,
             on_plan=None, max_steps: int = 100_000) -> list[BurstPlan]:
    """Drive sender and edge to completion: bursts go on air in order, the edge reports each as it ends;
    after a 'last' burst it sends its missing list. Returns every plan sent."""
    now, air, plans = 0.0, deque(), []
    for _ in range(max_steps):
        if sender.done:
            return plans
        while (plan := sender.next_plan(now)) is not None:
            assert len(sender.outstanding) <= (1 if plan.flags & FLAG_PROBE else sender.window_bursts)
            plans.append(plan)
            air.append(plan)
            if on_plan:
                on_plan(plan)
        if air:
            plan = air.popleft()
            now += plan.samples(SETTINGS) / SETTINGS.sample_rate_hz
            report = edge.receive(plan)
            if report is not None:
                sender.on_report(report, now + 0.02)
            if missing_lists and plan.flags & FLAG_LAST:
                sender.on_missing(edge.received.missing(edge.payload_bytes), plan.burst)
        else:
            assert sender.outstanding, "deadlock: nothing on air, nothing outstanding, not done"
            now = max(now, min(f.deadline_s for f in sender.outstanding.values())) + 1e-3
        for burst in sender.expired(now):
            sender.on_timeout(burst)
    raise AssertionError("no convergence")


def _report(plan: BurstPlan, codewords_ok: int | None = None, failed=()) -> BurstOutcome:
    """A detected burst at 20 dB: all codewords decoded, or codewords_ok of them and `failed` byte ranges."""
    ok = plan.codewords if codewords_ok is None else codewords_ok
    return BurstOutcome(plan.burst, True, np.full(plan.codewords, 20.0), ok, tuple(failed))


def _airtime_s(plan: BurstPlan) -> float:
    return airtime.burst_samples_v2(SETTINGS, plan.mcs, plan.codewords, plan.map_codewords) / SETTINGS.sample_rate_hz


def _check_airtime(sender: ArqSender, plans: list[BurstPlan]) -> None:
    for plan in plans:
        limit = sender.probe_airtime_s if plan.flags & FLAG_PROBE else sender.burst_airtime_s
        assert _airtime_s(plan) <= limit


def _probe_codewords() -> int:
    return airtime.max_burst_codewords(SETTINGS, QPSK12, 0.05)


# ----- whole transfers -----

@pytest.mark.parametrize("mcs", [QPSK12, QAM64_56])
def test_lossless_delivers_every_byte_once(mcs: Mcs) -> None:
    payload = 1_000_003
    sender = ArqSender(payload, SETTINGS, FixedMcs(mcs), window_bursts=2)
    edge = SimEdge(payload)
    plans = simulate(sender, edge)
    assert sender.done and edge.received.covers(0, payload)
    assert edge.delivered_bytes == payload and edge.duplicate_bytes == 0
    probe = _probe_codewords()  # the probe carries the first codewords at qpsk-1/2 (L = 119)
    assert probe == PROBE_CODEWORDS
    assert sender.stats.codewords_sent == probe + -(-(payload - probe * 119) // codeword_bytes(mcs))
    assert sender.stats.codewords_ok == sender.stats.codewords_sent
    assert sender.stats.bytes_resent == 0 and sender.stats.timeouts == 0 and sender.stats.map_codewords == 0
    assert [p.flags for p in plans].count(FLAG_LAST) == 1 and plans[-1].flags == FLAG_LAST
    assert plans[0].flags == FLAG_PROBE and plans[0].mcs == QPSK12 and sender.stats.probes == 1
    assert all(len(p.runs) == 1 for p in plans)
    _check_airtime(sender, plans)
    full = plans[1:-1]  # first-pass bursts are full: one more codeword would not fit (a flat probe: no ramp)
    assert all(p.codewords == airtime.max_burst_codewords(SETTINGS, mcs, 1.0) for p in full)
    assert all(airtime.burst_samples_v2(SETTINGS, mcs, p.codewords + 1) > 1e6 for p in full)


def test_random_codeword_loss_converges_and_resends_every_lost_range() -> None:
    payload = 600_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM16_34), window_bursts=3)
    edge = SimEdge(payload, codeword_loss=0.1, seed=7)
    plans = simulate(sender, edge)
    assert sender.done and edge.received.covers(0, payload)
    assert edge.lost.covered_bytes > 0.05 * payload and not edge.unrepaired  # every lost range went again
    assert sender.stats.bytes_resent >= edge.lost.covered_bytes
    assert sender.stats.codewords_ok < sender.stats.codewords_sent
    assert sender.stats.map_codewords > 0  # repair bursts listed their runs
    assert sender.stats.timeouts == 0
    assert max(len(p.runs) for p in plans) > 1
    assert edge.duplicate_bytes < sum(len(p.runs) for p in plans) * 180  # only re-cut overhangs repeat bytes
    _check_airtime(sender, plans)
    for plan in plans:
        assert plan.map_codewords == map_codewords_for(plan.runs, codeword_bytes(plan.mcs))


def test_lost_reports_time_out_and_resend_without_deadlock() -> None:
    payload = 400_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56), window_bursts=2, report_timeout_s=0.5)
    edge = SimEdge(payload, codeword_loss=0.02, report_loss=0.3, seed=3)
    plans = simulate(sender, edge, missing_lists=False)  # no missing lists: timeouts alone must recover
    assert sender.done and edge.received.covers(0, payload)
    assert sender.stats.timeouts > 0 and sender.stats.bytes_resent > 0
    _check_airtime(sender, plans)


def test_every_loss_kind_together_converges() -> None:
    payload = 300_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM16_34), window_bursts=4, report_timeout_s=0.3)
    edge = SimEdge(payload, codeword_loss=0.2, report_loss=0.2, seed=11)
    plans = simulate(sender, edge)
    assert sender.done and edge.received.covers(0, payload)
    assert edge.reports_lost > 0  # settled by timeouts or by the missing lists
    _check_airtime(sender, plans)


def test_last_flag_closes_each_pass() -> None:
    payload = 200_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM16_34), window_bursts=2)
    edge = SimEdge(payload, codeword_loss=0.1, seed=5)
    seen: list[tuple[BurstPlan, int]] = []
    plans = simulate(sender, edge, on_plan=lambda p: seen.append((p, sender.to_send_bytes)))
    first_pass_end = next(i for i, p in enumerate(plans) if p.runs[-1].offset + p.runs[-1].count * 180 >= payload)
    assert [bool(p.flags & FLAG_LAST) for p in plans[: first_pass_end + 1]].count(True) == 1
    assert plans[first_pass_end].flags & FLAG_LAST
    for plan, left in seen:  # 'last' exactly when the burst left nothing to send
        assert bool(plan.flags & FLAG_LAST) == (left == 0)
    assert plans[-1].flags & FLAG_LAST


def test_restart_mid_transfer_resends_what_the_edge_lost() -> None:
    payload = 1_000_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56), window_bursts=2)
    edge = SimEdge(payload)
    crashed = []

    def crash(plan: BurstPlan) -> None:
        if plan.burst == 3:  # bursts 2 and 3 on air, 0 and 1 reported
            edge.received = IntervalSet([(0, PROBE_BYTES)])  # the edge kept only what it had persisted
            sender.restart()
            assert not sender.outstanding and not sender.acked
            assert list(sender.resend) == [(0, sender.frontier)]
            sender.on_missing(edge.received.missing(payload))  # its fresh list
            assert list(sender.acked) == [(0, PROBE_BYTES)]
            assert list(sender.resend) == [(PROBE_BYTES, sender.frontier)]
            crashed.append(sender.frontier)

    plans = simulate(sender, edge, on_plan=crash)
    assert crashed and sender.done and edge.received.covers(0, payload)
    assert sender.stats.stale_reports == 2  # bursts on air at the restart reported to a sender that forgot them
    assert plans[4].runs[0].offset == PROBE_BYTES  # the resend goes first, from the first byte the edge lacks


def test_real_selector_adapts_and_converges() -> None:
    payload = 500_000
    selector = McsSelector.from_shipped()
    sender = ArqSender(payload, SETTINGS, selector, window_bursts=2)
    plans = simulate(sender, SimEdge(payload, codeword_loss=0.01, seed=2, snr_db=20.0))
    assert sender.done
    assert plans[0].mcs == QPSK12
    assert {p.mcs.name for p in plans[1:]} - {"ldpc-bpsk-1/4", "ldpc-bpsk-1/2", "ldpc-qpsk-1/2"}  # it sped up
    _check_airtime(sender, plans)


# ----- rules, step by step -----

def test_window_is_one_until_the_probe_reports_then_window_bursts() -> None:
    sender = ArqSender(1_000_000, SETTINGS, FixedMcs(QAM64_56), window_bursts=3)
    probe = sender.next_plan(0.0)
    assert probe.flags == FLAG_PROBE and probe.runs == (CodewordRun(0, PROBE_CODEWORDS),) and sender.window == 1
    assert sender.next_plan(0.0) is None and sender.next_plan(10.0) is None
    sender.on_timeout(probe.burst)  # a lost probe: probe again (window still 1), from the same bytes
    again = sender.next_plan(10.0)
    assert again.flags == FLAG_PROBE and again.runs == probe.runs and sender.next_plan(10.0) is None
    sender.on_report(BurstOutcome(again.burst, False))  # undetected: still probing
    third = sender.next_plan(11.0)
    assert third.flags == FLAG_PROBE and sender.stats.undetected == 1
    sender.on_report(_report(third))
    assert sender.window == 3 and list(sender.acked) == [(0, PROBE_BYTES)]
    bursts = [sender.next_plan(12.0) for _ in range(4)]
    assert all(b is not None for b in bursts[:3]) and bursts[3] is None
    assert [b.runs[0].offset for b in bursts[:3]] == [PROBE_BYTES, PROBE_BYTES + 1 * 200 * bursts[0].codewords,
                                                      PROBE_BYTES + 2 * 200 * bursts[0].codewords]
    sender.on_report(_report(bursts[0]))
    assert sender.next_plan(13.0) is not None and sender.next_plan(13.0) is None


def test_bursts_picked_from_a_fading_probe_are_short_then_full() -> None:
    """A probe whose codeword SNRs spread wider than ramp_spread_db (two fading blocks) is followed by bursts of
    at most RAMP_AIRTIME_S until a report of a non-probe burst brings SNRs of its own; a flat probe by full ones."""
    ramp = airtime.max_burst_codewords(SETTINGS, QAM16_34, RAMP_AIRTIME_S)
    full = airtime.max_burst_codewords(SETTINGS, QAM16_34, 1.0)
    assert RAMP_AIRTIME_S <= 0.25 and 3.5 * ramp < full
    sender = ArqSender(10_000_000, SETTINGS, FixedMcs(QAM16_34), window_bursts=2)
    probe = sender.next_plan(0.0)
    fading = np.r_[np.full(6, 12.0), np.full(5, 12.0 + 1.5 * sender.ramp_spread_db)]
    sender.on_report(BurstOutcome(probe.burst, True, fading, probe.codewords))
    a, b = sender.next_plan(1.0), sender.next_plan(1.0)  # the window's two bursts, both picked from the probe
    assert a.codewords == b.codewords == ramp and _airtime_s(a) <= RAMP_AIRTIME_S
    sender.on_report(_report(a))  # a ramp burst's own SNRs: full length again
    c = sender.next_plan(2.0)
    assert c.codewords == full
    flat = ArqSender(10_000_000, SETTINGS, FixedMcs(QAM16_34), window_bursts=2)
    probe = flat.next_plan(0.0)
    steady = 12.0 + np.linspace(0.0, 0.9 * flat.ramp_spread_db, probe.codewords)  # AWGN-like: 0.3-0.7 dB
    flat.on_report(BurstOutcome(probe.burst, True, steady, probe.codewords))
    assert flat.next_plan(1.0).codewords == full
    again = ArqSender(10_000_000, SETTINGS, FixedMcs(QAM16_34), window_bursts=1)
    probe = again.next_plan(0.0)
    again.on_report(BurstOutcome(probe.burst, False))  # undetected: probe again, then the ramp
    probe = again.next_plan(1.0)
    assert probe.flags == FLAG_PROBE
    again.on_report(BurstOutcome(probe.burst, True, fading, probe.codewords))
    assert again.next_plan(2.0).codewords == ramp


def test_expired_uses_queued_airtime_and_report_timeout() -> None:
    sender = ArqSender(1_000_000, SETTINGS, FixedMcs(QAM64_56), window_bursts=2, report_timeout_s=0.5)
    probe = sender.next_plan(0.0)
    end = _airtime_s(probe)
    assert sender.expired(end + 0.49) == [] and sender.expired(end + 0.51) == [probe.burst]
    sender.on_report(_report(probe))
    a, b = sender.next_plan(1.0), sender.next_plan(1.0)  # b queues behind a on air
    assert sender.expired(1.0 + _airtime_s(a) + 0.51) == [a.burst]
    assert sender.expired(1.0 + _airtime_s(a) + _airtime_s(b) + 0.51) == [a.burst, b.burst]


def test_mcs_change_recuts_resend_ranges_at_the_new_length() -> None:
    payload = 100_000
    selector = Scripted("ldpc-16qam-3/4", "ldpc-64qam-5/6")
    sender = ArqSender(payload, SETTINGS, selector, window_bursts=1)
    probe = sender.next_plan(0.0)  # 11 codewords of 119 bytes
    failed = ((238, 476), (833, 952))  # codewords 2-3 and 7
    sender.on_report(_report(probe, 8, failed))
    assert list(sender.resend) == list(failed)
    repair = sender.next_plan(1.0)  # at 16qam-3/4: L = 180
    assert repair.mcs == QAM16_34
    assert repair.runs[:2] == (CodewordRun(238, 2), CodewordRun(833, 1))  # ceil(238 / 180), ceil(119 / 180)
    assert repair.runs[2].offset == PROBE_BYTES  # then the frontier
    assert repair.map_codewords == map_codewords_for(repair.runs, 180) >= 1
    assert _airtime_s(repair) <= 1.0 and sender.stats.bytes_resent == 238 + 119 and not sender.resend
    # it fails again (first codeword); the next burst goes at 64qam-5/6, L = 200
    sender.on_report(_report(repair, repair.codewords - 1, ((238, 418),)))
    assert list(sender.resend) == [(238, 418)]  # [418, 476) was delivered by the second codeword
    frontier = sender.frontier
    third = sender.next_plan(2.0)
    assert third.mcs == QAM64_56 and third.runs[:2] == (CodewordRun(238, 1), CodewordRun(frontier, third.codewords - 1))
    assert selector.updates == [(pytest.approx(1 / repair.codewords), 0.05)]  # the probe does not move the loop


def test_recut_covers_nearby_ranges_with_one_run() -> None:
    sender = ArqSender(10_000, SETTINGS, Scripted("ldpc-64qam-5/6"), window_bursts=1)
    probe = sender.next_plan(0.0)
    sender.on_report(_report(probe, 8, ((0, 100), (150, 300))))
    plan = sender.next_plan(1.0)  # [0, 200) then [200, 400): both ranges in one run, no MAP
    assert plan.runs[0] == CodewordRun(0, 2) and plan.runs[1].offset == PROBE_BYTES


def test_missing_list_leaves_newer_bursts_in_flight() -> None:
    payload = 1_000_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QPSK12), window_bursts=2)
    probe = sender.next_plan(0.0)
    sender.on_report(_report(probe))
    b1, b2 = sender.next_plan(1.0), sender.next_plan(1.0)
    (s1, e1), = codeword_ranges(b1.runs, 119, payload)
    (s2, e2), = codeword_ranges(b2.runs, 119, payload)
    assert e1 == s2 and sender.frontier == e2
    # the edge processed b1 (its codeword 0 failed) but not b2, so its list names all of b2 and beyond
    sender.on_missing([(s1, s1 + 119), (s2, payload)], through_burst=b1.burst)
    assert list(sender.outstanding) == [b2.burst]
    assert list(sender.resend) == [(s1, s1 + 119)]  # not b2's bytes: they are in flight
    assert list(sender.acked) == [(0, s1), (s1 + 119, e1)]
    nxt = sender.next_plan(2.0)
    assert nxt.runs[0] == CodewordRun(s1, 1) and nxt.runs[1].offset == e2 and len(nxt.runs) == 2
    sender.on_report(_report(b1, 0))  # late: settled by the list
    assert sender.stats.stale_reports == 1 and list(sender.outstanding) == [b2.burst, nxt.burst]


def test_failed_bytes_carried_by_a_newer_burst_are_not_resent() -> None:
    payload = 2_000_000
    selector = Scripted("ldpc-64qam-5/6", "ldpc-64qam-5/6", "ldpc-16qam-3/4")
    sender = ArqSender(payload, SETTINGS, selector, window_bursts=2)
    probe = sender.next_plan(0.0)
    sender.on_report(_report(probe))
    b1, b2 = sender.next_plan(1.0), sender.next_plan(1.0)
    (s1, e1), = codeword_ranges(b1.runs, 200, payload)
    (s2, e2), = codeword_ranges(b2.runs, 200, payload)
    sender.on_report(_report(b1, b1.codewords - 1, ((e1 - 200, e1),)))
    b3 = sender.next_plan(2.0)  # at L = 180 the failed 200 bytes take 2 codewords: 160 bytes into b2's range
    assert b3.runs[0] == CodewordRun(e1 - 200, 2)
    sender.on_timeout(b2.burst)  # b2's report is lost; b3 still carries [e1, e1 + 160)
    assert list(sender.resend) == [(e1 + 160, e2)] and sender.stats.timeouts == 1
    assert s2 == e1


def test_undetected_burst_goes_back_to_resend() -> None:
    sender = ArqSender(100_000, SETTINGS, FixedMcs(QAM64_56), window_bursts=2)
    probe = sender.next_plan(0.0)
    sender.on_report(_report(probe))
    plan = sender.next_plan(1.0)
    sender.on_report(BurstOutcome(plan.burst, False))
    assert list(sender.resend) == codeword_ranges(plan.runs, 200, 100_000) and sender.stats.undetected == 1


def test_tail_info_only_near_the_end() -> None:
    selector = Scripted("ldpc-64qam-5/6")
    sender = ArqSender(30_000_000, SETTINGS, selector, window_bursts=2)
    probe = sender.next_plan(0.0)
    sender.on_report(_report(probe), now_s=_airtime_s(probe) + 0.05)
    assert sender.rtt_s == pytest.approx(0.1 + 0.2 * (0.05 - 0.1))
    sender.next_plan(1.0)
    assert selector.tails == [None]
    small = ArqSender(50_000, SETTINGS, selector, window_bursts=2, rtt_s=0.03)
    p = small.next_plan(0.0)
    small.on_report(_report(p))
    small.next_plan(1.0)
    assert selector.tails[-1] == TailInfo(50_000 - PROBE_BYTES, 0.03)


def test_empty_and_one_byte_payloads() -> None:
    empty = ArqSender(0, SETTINGS, FixedMcs(QAM64_56))
    assert empty.done and empty.next_plan(0.0) is None and empty.stats.bursts == 0
    one = ArqSender(1, SETTINGS, FixedMcs(QAM64_56))
    plan = one.next_plan(0.0)
    assert plan.runs == (CodewordRun(0, 1),) and plan.flags == FLAG_PROBE | FLAG_LAST and plan.payload_bytes == 1
    assert not one.done and one.next_plan(0.0) is None
    one.on_report(_report(plan, 0, ((0, 1),)))
    again = one.next_plan(1.0)  # detected: probing is over, the resend goes at the selector's MCS
    assert again.runs == (CodewordRun(0, 1),) and again.flags == FLAG_LAST and again.mcs == QAM64_56
    one.on_report(_report(again))
    assert one.done and one.stats.codewords_sent == 2 and one.stats.bytes_resent == 1


def test_repair_burst_with_many_runs_fits_its_airtime() -> None:
    payload = 2_000_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(by_name("ldpc-bpsk-1/4")), window_bursts=1,
                       burst_airtime_s=0.2)
    sender.probing = False
    sender.frontier = payload  # everything sent; every other codeword-sized range missing
    sender.on_missing([(i, i + 50) for i in range(0, payload, 1000)])
    plan = sender.next_plan(0.0)
    assert len(plan.runs) > 1 and plan.map_codewords >= 1
    assert _airtime_s(plan) <= 0.2
    assert airtime.burst_samples_v2(SETTINGS, plan.mcs, plan.codewords + 1, plan.map_codewords) > 0.2e6
    big = ArqSender(payload, SETTINGS, FixedMcs(by_name("ldpc-256qam-5/6")), window_bursts=1, burst_airtime_s=2.0)
    big.probing, big.frontier = False, payload
    big.on_missing([(i, i + 10) for i in range(0, payload, 500)])
    plan = big.next_plan(0.0)  # ~2000 codewords would fit: the run limit binds
    assert len(plan.runs) == 1024 and plan.map_codewords <= 255 and _airtime_s(plan) <= 2.0


def test_30_mb_plans_in_bounded_memory() -> None:
    payload = 30_000_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56), window_bursts=4)
    edge = SimEdge(payload, codeword_loss=0.01, report_loss=0.01, seed=1)
    tracemalloc.start()
    plans_count = len(simulate(sender, edge))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sender.done and edge.received.covers(0, payload)
    first_pass = -(-payload // (200 * airtime.max_burst_codewords(SETTINGS, QAM64_56, 1.0)))  # 199 bursts
    assert plans_count <= 1.05 * first_pass + 1  # repairs ride along in the first-pass bursts
    first = PROBE_CODEWORDS + -(-(payload - PROBE_BYTES) // 200)
    resent = edge.lost.covered_bytes // 200 + sender.stats.timeouts * 754  # lost codewords, lost reports' bursts
    assert first < sender.stats.codewords_sent <= first + resent and sender.stats.timeouts <= edge.reports_lost
    assert peak < 2 << 20  # 0.35 MiB here  # no per-byte structure: 30 MB of payload would show
