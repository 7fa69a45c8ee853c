"""ArqSender.on_held: a sender that starts afresh on a session the edge partly holds sends only what it lacks."""

from __future__ import annotations

from radio.arq import ArqSender
from radio.burst import codeword_bytes
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
