"""McsSelector under block fading (radio/link_adaptation.py): the probe's fading prior and its spread rule, the outer
loop's weight by sample size, repairs counted with their repeats in the tail rule. Synthetic logistic curves."""

from __future__ import annotations

import numpy as np
import pytest

from radio.link_adaptation import McsSelector, SelectorSettings, TailInfo, fading_prior
from radio.mcs import by_name

SMALL = tuple(by_name(n) for n in ("ldpc-qpsk-1/2", "ldpc-16qam-1/2", "ldpc-16qam-3/4", "ldpc-64qam-5/6"))
THRESHOLDS_DB = (2.0, 7.0, 11.0, 18.0)  # BLER 0.5 at these SNRs


def curves(width_db: float = 0.5) -> dict:
    grid = np.arange(-5.0, 35.0, 0.25)
    bler = {m.name: (1.0 / (1.0 + np.exp((grid - t) / width_db))).tolist() for m, t in zip(SMALL, THRESHOLDS_DB)}
    return {"snr_db": grid.tolist(), "bler": bler}


def test_fading_prior_keeps_the_mean_power_and_spreads_like_rician_k6() -> None:
    s = fading_prior(np.array([14.0, 16.0, 15.0]), 6.0)
    mean_db = 10 * np.log10(np.mean(10 ** (np.array([14.0, 16.0, 15.0]) / 10)))
    assert 10 * np.log10(np.mean(10 ** (s / 10))) == pytest.approx(mean_db, abs=0.1)
    assert np.all(np.diff(s) > 0) and s.size == 64
    assert np.median(s) - mean_db == pytest.approx(-0.3, abs=0.3)
    assert np.quantile(s, 0.1) - mean_db < -3.0  # one block in ten is 3 dB or more below the mean


def test_a_probe_that_spans_fading_blocks_is_judged_by_the_prior() -> None:
    """11 codeword SNRs over two blocks 6 dB apart (a 50 ms probe under 20 ms Rician blocks): judged as they
    are, 64qam-5/6 looked safe on the good block's nine; by the prior, a more robust MCS wins. A probe with
    AWGN-like spread, or a full burst, is judged as it is."""
    probe = np.r_[np.full(9, 19.0), np.full(2, 13.0)]
    plain = McsSelector(SMALL, curves(), settings=SelectorSettings(prior_below_codewords=0))
    assert plain.pick(probe).name == "ldpc-64qam-5/6"
    assert McsSelector(SMALL, curves()).pick(probe).name == "ldpc-16qam-3/4"
    steady = np.full(11, 19.0) + np.linspace(-0.4, 0.4, 11)
    assert McsSelector(SMALL, curves()).pick(steady).name == "ldpc-64qam-5/6"
    burst = np.tile(probe, 3)  # 33 codewords: the sample itself counts
    assert McsSelector(SMALL, curves()).pick(burst).name == "ldpc-64qam-5/6"


def test_a_probe_over_two_blocks_a_little_apart_is_judged_as_fading() -> None:
    """Two blocks 1.5 dB apart (more than a probe's 0.3-0.7 dB over AWGN, less than fading_spread_db), bursts
    interleaved as on the link: the prior judges them, so 64qam-5/6 is not picked from seven codewords at 20 dB;
    a sample of 11 with AWGN-like spread (0.6 dB), or a full burst with the same 1.5 dB spread, is judged as it is."""
    settings = SelectorSettings(interleaved=True)
    assert settings.probe_spread_db < 1.5 < settings.fading_spread_db

    def pick(snr_db: np.ndarray, options: SelectorSettings = settings) -> str:
        return McsSelector(SMALL, curves(), settings=options).pick(snr_db).name

    probe = np.r_[np.full(7, 20.0), np.full(4, 18.5)]
    assert pick(probe) == "ldpc-16qam-3/4"
    assert pick(probe, SelectorSettings(interleaved=True, probe_spread_db=2.0)) == "ldpc-64qam-5/6"  # the old rule
    assert pick(20.0 + np.linspace(-0.3, 0.3, 11)) == "ldpc-64qam-5/6"
    assert pick(np.tile(probe, 3)) == "ldpc-64qam-5/6"


def test_outer_loop_step_is_weighted_by_the_sample_behind_the_prediction() -> None:
    """A burst picked from 11 SNRs that fails far more than predicted moves delta by 11/64 of a full step; one
    picked from 200 SNRs by the full step."""
    small = McsSelector(SMALL, curves())
    small.pick(np.full(11, 12.0))
    predicted = small.last_predicted_bler
    full = McsSelector(SMALL, curves())
    full.pick(np.full(200, 12.0))
    assert full.last_predicted_bler == predicted
    step = SelectorSettings().outer_gain * (0.6 - predicted) / max(predicted, 0.01)
    assert full.update(0.6) == pytest.approx(max(-step, -3.0))
    assert small.update(0.6) == pytest.approx(max(-step * 11 / 64, -3.0))


def test_tail_counts_the_repeats_of_repairs() -> None:
    """With p2 given, the repair airtime is k (1 - p1) / p2 codewords: under fading a repair fails as often as
    the first pass, so the tail no longer prefers an MCS that needs many of them."""
    sel = McsSelector(SMALL, curves(), settings=SelectorSettings(symbol_rate_hz=250e3))
    tail = TailInfo(remaining_bytes=20_000, rtt_s=0.01)
    p1 = np.array([1.0, 0.9, 0.6, 0.5])
    once = sel.completion_s(p1, tail)
    p2 = np.array([1.0, 0.9, 0.6, 0.5])
    repeated = sel.completion_s(p1, tail, p2)
    assert repeated[0] == once[0]
    assert np.all(repeated[1:] > once[1:])
    assert repeated[3] - repeated[2] > once[3] - once[2]
