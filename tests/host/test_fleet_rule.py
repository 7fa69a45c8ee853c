"""The fleet's MCS rule and the policy state of a fleet: the rule's SNR is what the policy reads as snr_db."""

from __future__ import annotations

import pytest

from host.fountain_sender import rule_snr_db
from policy.baselines import SnrThreshold
from policy.state import PolicyState


def test_the_rule_picks_the_worst_edge_or_a_percentile_and_ignores_edges_not_heard():
    snrs = [20.0, None, 2.0, 8.0, 14.0, float("nan")]
    assert rule_snr_db(snrs, "worst", 25.0) == 2.0
    assert rule_snr_db(snrs, "percentile", 25.0) == pytest.approx(6.5)  # numpy's linear percentile of 2, 8, 14, 20
    assert rule_snr_db(snrs, "percentile", 0.0) == 2.0 and rule_snr_db([None], "worst", 25.0) is None


def test_a_fleet_state_keeps_the_single_edge_input_and_adds_the_fleets_snrs():
    base = dict(bandwidth_hz=312_500.0, entropy=0.5, oov_rate=0.1, modules=["q", "v"], shapes={"q": (8, 8), "v": (8, 8)})
    one = PolicyState(snr_db=7.0, **base)
    assert (one.snr_db_min, one.snr_db_mean, one.snr_db_percentile(50)) == (7.0, 7.0, 7.0)
    fleet = PolicyState(snr_db=2.0, fleet_snr_db=[2.0, 8.0, 20.0], **base)
    assert (fleet.snr_db_min, fleet.snr_db_mean, fleet.snr_db_percentile(50)) == (2.0, 10.0, 8.0)
    # a baseline decides from snr_db alone: the fleet's worst edge sets the rank as one edge at 2 dB would
    heuristic = SnrThreshold(cost=lambda ranks, snr: 100.0 / (1 + max(snr, 0)) * ranks["q"], candidates=(1, 2, 4, 8))
    assert heuristic.choose(fleet) == heuristic.choose(PolicyState(snr_db=2.0, **base))
