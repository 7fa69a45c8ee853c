"""Timing drift from the matched filter's spectral line: the sample clock offset a Channel applies is read back
to a fraction of a ppm, its reported spread matches the measured one, and noise alone is not significant."""

from __future__ import annotations

import numpy as np
import pytest

from radio.channel import Channel
from radio.modulation import constellation, map_bits
from radio.pulse import filter_delay, matched_filter, shape
from radio.timing_drift import NO_DRIFT, drift_positions, estimate_drift, spectral_line

SPS, ROLLOFF = 4, 0.25


def received(n_symbols: int, snr_db: float, sco_ppm: float, seed: int, modulation: str = "qpsk",
             rolloff: float = ROLLOFF) -> np.ndarray:
    """Matched-filter output of random symbols through an AWGN channel with a sample clock offset; symbol 0
    at sample filter_delay."""
    rng = np.random.default_rng(seed)
    c = constellation(modulation)
    symbols = map_bits(rng.integers(0, 2, n_symbols * c.bits_per_symbol).astype(np.uint8), c)
    x = shape(symbols.astype(np.complex64), SPS, rolloff)
    channel = Channel("awgn", snr_db, 1e6, SPS, float(np.mean(np.abs(x) ** 2)), seed=seed + 1, sco_ppm=sco_ppm)
    return matched_filter(channel.apply(np.concatenate([x, np.zeros(400, np.complex64)])), SPS, rolloff)


@pytest.mark.parametrize("sco_ppm", [-200.0, -20.0, 37.0, 150.0])
def test_reads_back_the_channels_sample_clock_offset(sco_ppm: float) -> None:
    y = received(20000, 15.0, sco_ppm, seed=3)
    d = estimate_drift(y, filter_delay(SPS, ROLLOFF), 20000, SPS)
    # the channel's clock fast by eps puts the symbols sps / (1 + eps) apart
    assert d.drift_ppm == pytest.approx((1 / (1 + sco_ppm * 1e-6) - 1) * 1e6, abs=1.0)
    assert 0 < d.std * 1e6 < 1.5
    assert d.significant and d.segments == 20000 // 64


def test_no_offset_reads_near_zero_and_is_not_significant() -> None:
    for seed in range(3):
        d = estimate_drift(received(20000, 15.0, 0.0, seed), filter_delay(SPS, ROLLOFF), 20000, SPS)
        assert abs(d.drift_ppm) < 1.0 and not d.significant


def test_reported_spread_matches_the_measured_one_at_0_db() -> None:
    est = [estimate_drift(received(4000, 0.0, 0.0, seed, "bpsk"), filter_delay(SPS, ROLLOFF), 4000, SPS)
           for seed in range(30)]
    measured = np.std([d.drift for d in est])
    reported = np.median([d.std for d in est])
    assert 0.7 < reported / measured < 1.6
    assert sum(d.significant for d in est) <= 1


def test_noise_alone_shows_no_line() -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        y = (rng.standard_normal(80_000) + 1j * rng.standard_normal(80_000)).astype(np.complex64)
        d = estimate_drift(matched_filter(y, SPS, ROLLOFF), 0, 19_000, SPS)
        assert d.std == np.inf and not d.significant


def test_the_line_phase_is_the_timing() -> None:
    """Delaying the stream by a quarter symbol turns the spectral line by -2 pi / 4."""
    y = received(8000, 30.0, 0.0, seed=1)
    first = filter_delay(SPS, ROLLOFF)
    x0 = spectral_line(y, first, 8000, SPS).sum()
    x1 = spectral_line(np.concatenate([np.zeros(1, np.complex64), y]), first, 8000, SPS).sum()
    assert np.angle(x1 / x0) == pytest.approx(-np.pi / 2, abs=0.05)


def test_no_estimate_at_2_samples_per_symbol_or_on_a_short_packet() -> None:
    y = received(4000, 20.0, 50.0, seed=2)
    assert estimate_drift(y, filter_delay(SPS, ROLLOFF), 4000, 2) == NO_DRIFT
    assert estimate_drift(y, filter_delay(SPS, ROLLOFF), 300, SPS) == NO_DRIFT
    assert not NO_DRIFT.significant


def test_positions_hold_at_the_reference_symbol_and_slip_from_there() -> None:
    p = drift_positions(10.0, 5, 4, 1e-3, 2.0)
    np.testing.assert_allclose(p, [10 - 0.008, 14 - 0.004, 18.0, 22.004, 26.008])
