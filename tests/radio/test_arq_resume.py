"""ArqSender.on_held: a sender that starts afresh on a session the edge partly holds sends only what it lacks, and
numbers its bursts past the edge's last_burst, so that a dead host's late report never settles one of its bursts."""

from __future__ import annotations

import numpy as np
import pytest

from radio.arq import MAX_BURST_NUMBER, ArqSender, BurstOutcome
from radio.burst import SigHeader, codeword_bytes
from radio.errors import RadioError
from radio.intervals import IntervalSet
from radio.link_adaptation import FixedMcs

from test_arq import PROBE_BYTES, QAM64_56, SETTINGS, SimEdge, simulate


def test_a_resuming_sender_sends_only_the_bytes_the_edge_lacks() -> None:
    payload = 1_000_000
    edge = SimEdge(payload)
    edge.received = IntervalSet([(0, 300_000), (500_000, 800_000)])  # what an earlier sender got there
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56), window_bursts=2)
    sent: list[tuple[int, int]] = []

    def on_plan(plan) -> None:
        if plan.burst == 0:  # the probe is on air when the edge's list comes (as over the control plane)
            sender.on_held(edge.received.missing(payload))
            assert sender.frontier == payload and list(sender.acked) == [(0, 300_000), (500_000, 800_000)]
            assert list(sender.resend) == [(300_000, 500_000), (800_000, payload)]  # the probe's bytes are held
        size = codeword_bytes(plan.mcs) if plan.burst else 119
        sent.extend((r.offset, min(r.offset + r.count * size, payload)) for r in plan.runs)

    simulate(sender, edge, on_plan=on_plan)
    assert sender.done and edge.received.covers(0, payload)
    after_probe = IntervalSet(sent[1:])
    assert after_probe.covered_bytes == 400_000  # exactly the two gaps (codewords cut at each gap's end) ...
    assert not after_probe.overlapping(0, 300_000) and not after_probe.overlapping(500_000, 800_000)  # ... only
    assert sent[0] == (0, PROBE_BYTES)


def test_a_held_list_of_everything_missing_unacks_what_was_acked() -> None:
    """The edge's answer to a payload that failed its SHA-256: it starts over, everything goes again."""
    payload = 100_000
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56), window_bursts=2)
    simulate(sender, SimEdge(payload))
    assert sender.done
    sender.on_held([(0, payload)])
    assert not sender.done and not sender.acked and list(sender.resend) == [(0, payload)]
    edge = SimEdge(payload)
    simulate(sender, edge)
    assert sender.done and edge.received.covers(0, payload)


def test_a_resumed_sender_numbers_past_last_burst_and_ignores_a_dead_hosts_report() -> None:
    payload = 2_000_000
    edge = SimEdge(payload)
    edge.received = IntervalSet([(0, 150_000)])  # what the dead host's bursts 0..2 delivered
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56), window_bursts=2)
    # the dead host's burst 3, decoded after the resume and reported under its own number: every codeword failed
    dead = BurstOutcome(3, True, np.full(50, 3.0), 0, ((150_000, 160_000),))

    def on_plan(plan) -> None:
        if plan.burst == 0:  # the probe went before the held list came: no resume known yet
            sender.on_held(edge.received.missing(payload), last_burst=1026)
        if plan.burst == 1029:  # three bursts after the probe (numbered 0, 1, 2, 3 without last_burst)
            state = (list(sender.acked), list(sender.resend), set(sender.outstanding))
            sender.on_report(dead)
            assert sender.stats.stale_reports == 1  # nothing settled, nothing resent
            assert (list(sender.acked), list(sender.resend), set(sender.outstanding)) == state

    plans = simulate(sender, edge, on_plan=on_plan)
    assert plans[0].burst == 0 and [p.burst for p in plans[1:]] == list(range(1027, 1026 + len(plans)))
    assert len(plans) > 4 and sender.stats.stale_reports == 1
    assert sender.done and edge.received.covers(0, payload) and edge.duplicate_bytes == PROBE_BYTES  # the probe only
    for p in plans:  # every number fits the SIG's u32
        SigHeader(p.mcs.index, p.flags, p.map_codewords, p.codewords, 0, p.burst, p.runs[0].offset, payload).pack()


def test_a_held_list_never_moves_the_numbering_back_and_a_number_past_u32_is_refused() -> None:
    payload = 1_000_000
    edge = SimEdge(payload)
    sender = ArqSender(payload, SETTINGS, FixedMcs(QAM64_56))
    for t in range(3):
        sender.on_report(edge.receive(sender.next_plan(float(t))))
    sender.on_held(edge.received.missing(payload), last_burst=0)  # an edge that saw less than this sender sent
    assert sender.next_plan(10.0).burst == 3
    sender.on_held(edge.received.missing(payload), last_burst=MAX_BURST_NUMBER - 1)
    last = sender.next_plan(20.0)
    assert last.burst == MAX_BURST_NUMBER and set(sender.outstanding) == {3, MAX_BURST_NUMBER}
    SigHeader(last.mcs.index, last.flags, last.map_codewords, last.codewords, 0, last.burst, last.runs[0].offset,
              payload).pack()  # the highest number still fits the SIG
    with pytest.raises(RadioError, match="last_burst 4294967295 leaves no burst number"):
        sender.on_held([(0, payload)], last_burst=MAX_BURST_NUMBER)
    with pytest.raises(RadioError, match="last_burst -1"):
        sender.on_held([(0, payload)], last_burst=-1)
