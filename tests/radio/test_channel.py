"""The channel model against theory: noise variance, fading statistics, CFO, delay, phase noise, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from radio.channel import FRAC_DELAY_HALF_TAPS, Channel
from radio.errors import RadioError
from radio.config import ChannelConfig

FS = 1.0e6
NOISELESS_DB = 200.0  # snr far above anything float32 resolves


def make(model: str = "awgn", snr_db: float = NOISELESS_DB, **kw) -> Channel:
    kw.setdefault("seed", 7)
    return Channel(model, snr_db, FS, kw.pop("sps", 4), kw.pop("reference_power", 1.0), **kw)


@pytest.mark.parametrize(("snr_db", "sps", "power"), [(10.0, 4, 0.3), (-3.0, 8, 1.0)])
def test_noise_variance_matches_es_n0_definition(snr_db: float, sps: int, power: float) -> None:
    ch = make(snr_db=snr_db, sps=sps, reference_power=power)
    expected = power * sps / 10 ** (snr_db / 10)
    assert ch.noise_variance == pytest.approx(expected, rel=1e-12)
    y = ch.apply(np.zeros(1_000_000, np.complex64))
    assert np.mean(np.abs(y) ** 2) == pytest.approx(expected, rel=0.02)
    # circular: half the variance in each part, no mean
    assert np.var(y.real) == pytest.approx(expected / 2, rel=0.02)
    assert abs(np.mean(y)) < 0.01 * np.sqrt(expected)


def test_set_snr_db_changes_noise_of_later_samples() -> None:
    ch = make(snr_db=20.0)
    before = np.mean(np.abs(ch.apply(np.zeros(200_000, np.complex64))) ** 2)
    ch.set_snr_db(10.0)
    after = np.mean(np.abs(ch.apply(np.zeros(200_000, np.complex64))) ** 2)
    assert ch.snr_db == 10.0
    assert 10 * np.log10(after / before) == pytest.approx(10.0, abs=0.2)


def fading_gains(model: str, count: int, **kw) -> np.ndarray:
    """One independent gain per sample (coherence 1), read off a constant input at very high SNR."""
    ch = make(model, coherence_samples=1, **kw)
    return ch.apply(np.ones(count, np.complex64)).astype(np.complex128)


def test_rayleigh_unit_power_and_exponential_power_distribution() -> None:
    h = fading_gains("rayleigh", 400_000)
    power = np.abs(h) ** 2
    assert np.mean(power) == pytest.approx(1.0, rel=0.01)
    for level in (0.1, 1.0, 3.0):
        assert np.mean(power < level) == pytest.approx(1 - np.exp(-level), abs=0.004)
    assert abs(np.mean(h)) < 0.01  # no line of sight


def test_rayleigh_is_block_fading() -> None:
    ch = make("rayleigh", coherence_samples=1000)
    y = ch.apply(np.ones(50_000, np.complex64)).reshape(50, 1000)
    assert np.allclose(y, y[:, :1], atol=1e-6)  # constant within a block
    assert len(np.unique(np.round(y[:, 0], 5))) == 50  # a new gain every block


@pytest.mark.parametrize("k_db", [0.0, 6.0, 12.0])
def test_rician_k_factor_recovered(k_db: float) -> None:
    h = fading_gains("rician", 400_000, rician_k_db=k_db)
    los = np.mean(h)
    scatter = np.mean(np.abs(h - los) ** 2)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, rel=0.01)
    assert 10 * np.log10(abs(los) ** 2 / scatter) == pytest.approx(k_db, abs=0.15)


def test_cfo_rotation_matches_cfo_hz() -> None:
    ch = make(snr_db=30.0, cfo_hz=1234.5)
    y = ch.apply(np.ones(200_000, np.complex64))
    measured = np.angle(np.sum(y[1:] * np.conj(y[:-1]))) * FS / (2 * np.pi)
    assert measured == pytest.approx(1234.5, abs=1.0)


def test_phase_noise_increment_variance() -> None:
    linewidth = 200.0
    ch = make(phase_noise_linewidth_hz=linewidth)
    y = ch.apply(np.ones(500_000, np.complex64))
    steps = np.angle(y[1:] * np.conj(y[:-1]))
    assert np.var(steps) == pytest.approx(2 * np.pi * linewidth / FS, rel=0.03)
    assert np.allclose(np.abs(y), 1.0, atol=1e-5)


def test_dc_offset_magnitude() -> None:
    ch = make(snr_db=10.0, dc_offset=0.05)
    y = ch.apply(np.zeros(400_000, np.complex64))
    assert abs(np.mean(y)) == pytest.approx(0.05, abs=0.003)
    assert abs(ch.dc_offset) == pytest.approx(0.05)


def band_limited(n: np.ndarray) -> np.ndarray:
    """A sum of tones below 0.2 cycles/sample, evaluated at (possibly fractional) times n."""
    freqs = np.array([0.013, -0.071, 0.12, 0.19])
    phases = np.array([0.3, 1.1, -2.0, 0.7])
    return np.exp(2j * np.pi * (np.outer(n, freqs) + phases)).sum(axis=1) / 4


@pytest.mark.parametrize("offset", [2.3, 40.75, 0.5])
def test_fractional_delay_of_band_limited_signal(offset: float) -> None:
    ch = make(timing_offset_samples=offset)
    n = np.arange(6000)
    y = ch.apply(band_limited(n).astype(np.complex64))
    expected_delay = offset if offset >= FRAC_DELAY_HALF_TAPS else FRAC_DELAY_HALF_TAPS + offset % 1
    assert ch.delay_samples == pytest.approx(expected_delay)
    settled = slice(200, None)  # after the filter has filled
    err = y[settled] - band_limited(n - expected_delay)[settled]
    assert np.max(np.abs(err)) < 2e-3
    # a wrong delay by a tenth of a sample is clearly worse
    wrong = y[settled] - band_limited(n - expected_delay - 0.1)[settled]
    assert np.max(np.abs(wrong)) > 0.02


def test_integer_delay_leads_with_noise_only_samples() -> None:
    ch = make(timing_offset_samples=37)
    x = np.exp(2j * np.pi * 0.05 * np.arange(1000)).astype(np.complex64)
    y = ch.apply(x)
    assert ch.delay_samples == 37
    assert np.allclose(y[:37], 0, atol=1e-6)
    assert np.allclose(y[37:], x[:-37], atol=1e-6)


ALL_IMPAIRMENTS = dict(
    snr_db=12.0, cfo_hz=-777.0, timing_offset_samples=21.4, phase_noise_linewidth_hz=50.0,
    dc_offset=0.02, coherence_samples=700,
)


@pytest.mark.parametrize("model", ["awgn", "rayleigh", "rician"])
@pytest.mark.parametrize("timing", [21.4, 3.0, 0.25])
def test_chunked_apply_equals_one_call(model: str, timing: float) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(30_000) + 1j * rng.standard_normal(30_000)).astype(np.complex64) * 0.3
    params = dict(ALL_IMPAIRMENTS, timing_offset_samples=timing)
    whole = make(model, **params).apply(x)
    ch = make(model, **params)
    cuts = [0, 1, 2, 699, 700, 701, 5000, 5017, 12_345, 29_999, 30_000]
    chunks = [ch.apply(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    assert all(len(c) == b - a for c, a, b in zip(chunks, cuts[:-1], cuts[1:]))
    assert np.allclose(np.concatenate(chunks), whole, atol=2e-5)
    assert ch.samples_processed == len(x)


def test_seeded_reproducibility() -> None:
    x = np.ones(5000, np.complex64)
    a = make("rician", seed=11, **ALL_IMPAIRMENTS).apply(x)
    b = make("rician", seed=11, **ALL_IMPAIRMENTS).apply(x)
    c = make("rician", seed=12, **ALL_IMPAIRMENTS).apply(x)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=0.1)


def test_output_dtype_and_length() -> None:
    y = make(**ALL_IMPAIRMENTS).apply(np.ones(123, np.complex128))
    assert y.dtype == np.complex64 and y.shape == (123,)
    assert make().apply(np.zeros(0, np.complex64)).shape == (0,)


def test_from_config_takes_every_field() -> None:
    cfg = ChannelConfig(model="rician", snr_db=9.0, rician_k_db=3.0, coherence_samples=55, cfo_hz=10.0,
                        timing_offset_samples=1.5, phase_noise_linewidth_hz=2.0, dc_offset=0.1, seed=9)
    ch = Channel.from_config(cfg, 2e6, 8, 0.5)
    assert (ch.model, ch.snr_db, ch.rician_k_db, ch.coherence_samples) == ("rician", 9.0, 3.0, 55)
    assert (ch.cfo_hz, ch.timing_offset_samples, ch.phase_noise_linewidth_hz, ch.seed) == (10.0, 1.5, 2.0, 9)
    assert ch.noise_variance == pytest.approx(0.5 * 8 / 10 ** 0.9)
    assert abs(ch.dc_offset) == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [dict(model="nakagami"), dict(reference_power=0.0), dict(coherence_samples=0)])
def test_bad_parameters_raise_radio_error(bad: dict) -> None:
    kw = dict(model="awgn", snr_db=10.0, sample_rate_hz=FS, samples_per_symbol=4, reference_power=1.0) | bad
    with pytest.raises(RadioError):
        Channel(**kw)
