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


# ----- sample clock offset -----

SCO_IMPAIRMENTS = dict(ALL_IMPAIRMENTS, sco_ppm=-80.0, sco_drift_ppm_per_s=6.0)


@pytest.mark.parametrize("model", ["awgn", "rician"])
@pytest.mark.parametrize("timing", [21.4, 3.0])
def test_chunked_apply_equals_one_call_with_sco_and_drift(model: str, timing: float) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(30_000) + 1j * rng.standard_normal(30_000)).astype(np.complex64) * 0.3
    params = dict(SCO_IMPAIRMENTS, timing_offset_samples=timing)
    whole = make(model, **params).apply(x)
    ch = make(model, **params)
    cuts = [0, 1, 2, 699, 700, 701, 5000, 5017, 12_345, 29_999, 30_000]
    chunks = [ch.apply(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    assert np.allclose(np.concatenate(chunks), whole, atol=2e-5)
    # -80 ppm: the receiver's clock is fast, so it reads more samples than were sent (less the 8-sample window)
    assert len(whole) == ch.samples_processed > len(x) - 8


def test_zero_sco_is_bit_identical_to_a_channel_without_it() -> None:
    x = band_limited(np.arange(20_000)).astype(np.complex64)
    base = dict(ALL_IMPAIRMENTS)
    a = make("rician", **base).apply(x)
    b = make("rician", sco_ppm=0.0, sco_drift_ppm_per_s=0.0, **base).apply(x)
    assert np.array_equal(a, b) and len(b) == len(x)
    assert make(**base).input_samples_for(1234) == 1234


def test_sco_resamples_before_cfo_a_tone_moves_by_f_eps_plus_cfo() -> None:
    # eps scales the baseband tone; the CFO is added after, in the receiver's time
    f, ppm, cfo = 0.2, 150.0, 500.0
    ch = make(sco_ppm=ppm, cfo_hz=cfo)
    y = ch.apply(np.exp(2j * np.pi * f * np.arange(1 << 17)).astype(np.complex64))[8:]
    spec = np.abs(np.fft.fft(y * np.hanning(len(y)), 16 * len(y)))
    freq = np.fft.fftfreq(len(spec))[np.argmax(spec)]
    assert freq == pytest.approx(f * (1 + ppm * 1e-6) + cfo / FS, abs=1e-6)
    assert ch.sco_ppm_now == ppm


@pytest.mark.parametrize("sco", [120.0, -120.0])
def test_pull_exactly_n_received_samples(sco: float) -> None:
    x = band_limited(np.arange(50_000)).astype(np.complex64)
    whole = make(sco_ppm=sco, sco_drift_ppm_per_s=-3.0).apply(x)
    ch = make(sco_ppm=sco, sco_drift_ppm_per_s=-3.0)
    out, used = [], 0
    for n in [1, 5, 4096, 333, 20_000, 7]:
        need = ch.input_samples_for(n)
        out.append(ch.apply(x[used:used + need], n))
        used += need
        assert len(out[-1]) == n
    got = np.concatenate(out)
    assert np.array_equal(got, whole[:len(got)])
    with pytest.raises(RadioError, match="too few"):
        ch.apply(np.zeros(3, np.complex64), 100)


def test_sim_backend_rx_returns_n_samples_through_a_clock_offset() -> None:
    from radio.backends import SimBackend

    sco = 200.0
    ch = make(sco_ppm=sco)
    b = SimBackend(ch, FS, idle_start_samples=0)
    x = np.exp(2j * np.pi * 0.05 * np.arange(100_000)).astype(np.complex64)
    b.tx(x)
    y = np.concatenate([b.rx(n) for n in (10_000, 1, 45_000, 43_999)])
    assert len(y) == 99_000
    t = np.arange(len(y)) * (1 + sco * 1e-6)
    assert np.max(np.abs(y[8:] - np.exp(2j * np.pi * 0.05 * t[8:]))) < 1e-3
    # the receiver's slower clock took ~1.0002 transmitted samples per received one, plus its 8-sample window
    assert b.pending == pytest.approx(100_000 - 99_000 * (1 + sco * 1e-6) - 8, abs=2)


def test_scheduled_channel_steps_snr_at_received_indices_with_sco() -> None:
    from radio.channel import ScheduledChannel

    sch = ScheduledChannel(make(snr_db=40.0, sco_ppm=-150.0), [(30_000, 0.0)])
    y = np.concatenate([sch.apply(np.zeros(n, np.complex64)) for n in (10_000, 25_000, 25_000)])
    assert sch.samples_processed == len(y) > 60_000 - 8
    noise = np.abs(y) ** 2
    assert np.mean(noise[29_000:30_000]) < 1e-3 < np.mean(noise[30_000:31_000])
    # pull mode through the schedule: exactly n
    need = sch.input_samples_for(5000)
    assert len(sch.apply(np.zeros(need, np.complex64), 5000)) == 5000


def test_shift_clock_adds_cfo_and_sco_and_keeps_drift() -> None:
    ch = make(cfo_hz=100.0, sco_drift_ppm_per_s=2.0)
    ch.apply(np.zeros(500_000, np.complex64))
    ch.shift_clock(10.0, 915e6)
    assert ch.cfo_hz == pytest.approx(100.0 + 9150.0)
    assert ch.sco_ppm_now == pytest.approx(11.0, abs=1e-3)  # 1 ppm of drift after 0.5 s, plus 10
    ch.apply(np.zeros(500_000, np.complex64))
    assert ch.sco_ppm_now == pytest.approx(12.0, abs=1e-3)


def test_from_config_passes_clock_offset() -> None:
    ch = Channel.from_config(ChannelConfig(sco_ppm=-42.0, sco_drift_ppm_per_s=0.5), FS, 4, 1.0)
    assert (ch.sco_ppm, ch.sco_drift_ppm_per_s) == (-42.0, 0.5)


@pytest.mark.parametrize(("key", "value"), [("sco_ppm", 250.0), ("sco_ppm", -200.5), ("sco_drift_ppm_per_s", 11.0)])
def test_clock_offset_config_bounds_name_the_key(key: str, value: float) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=key):
        ChannelConfig(**{key: value})
    with pytest.raises(RadioError, match="sco_ppm"):
        make(sco_ppm=2e4)
