"""The sample-clock-offset resampler against analytic band-limited signals: rate, drift, accuracy, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from radio.resample import RESAMPLER_TAPS, StreamResampler, polyphase_table

FS = 1.0e6
LOOKAHEAD = RESAMPLER_TAPS // 2  # output n needs input up to floor(p_n) + LOOKAHEAD
FREQS = np.array([0.011, -0.073, 0.129, -0.191, 0.2375, -0.249])  # cycles/sample, up to the 0.25 fs band edge
PHASES = np.array([0.3, 1.1, -2.0, 0.7, 2.5, -0.4])


def tones(t: np.ndarray) -> np.ndarray:
    """Sum of unit tones at FREQS evaluated at (fractional) sample times t: an exactly band-limited reference."""
    return np.exp(2j * np.pi * (np.outer(t, FREQS) + PHASES)).sum(axis=1) / len(FREQS)


def positions(n: np.ndarray, ppm: float, drift_ppm_per_s: float) -> np.ndarray:
    """p_n = sum_{k<n} (1 + eps_k), eps_k = (ppm + drift k / fs) 1e-6, in closed form."""
    n = n.astype(np.float64)
    return n + 1e-6 * (ppm * n + drift_ppm_per_s / FS * n * (n - 1) / 2)


def peak_frequency(y: np.ndarray, pad: int = 16) -> float:
    """Frequency (cycles/sample) of the strongest tone in y: zero-padded FFT peak plus a parabolic refinement."""
    spec = np.abs(np.fft.fft(y * np.hanning(len(y)), pad * len(y)))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1]), np.log(spec[k]), np.log(spec[(k + 1) % len(spec)])
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    f = (k + shift) / len(spec)
    return f - 1.0 if f >= 0.5 else f


def test_table_rows_have_unit_dc_gain_and_the_ends_are_integer_shifts() -> None:
    table = polyphase_table()
    assert table.shape == (257, RESAMPLER_TAPS)
    assert np.allclose(table.sum(axis=1), 1.0, atol=1e-12)
    # fraction 0 is the input sample itself, fraction 1 the next one
    assert table[0, LOOKAHEAD - 1] == pytest.approx(1.0)
    assert np.allclose(np.delete(table[0], LOOKAHEAD - 1), 0, atol=1e-12)
    assert table[-1, LOOKAHEAD] == pytest.approx(1.0)


@pytest.mark.parametrize(("ppm", "drift"), [(150.0, 0.0), (-200.0, 8.0), (37.5, -10.0)])
def test_in_band_error_below_minus_60_db_against_analytic_resampling(ppm: float, drift: float) -> None:
    n_in = 300_000
    r = StreamResampler(ppm, drift, FS)
    y = r.process(tones(np.arange(n_in)))
    ref = tones(positions(np.arange(len(y)), ppm, drift))
    settled = slice(LOOKAHEAD, None)  # before that the interpolator reaches into the zeros before the stream
    err_db = 10 * np.log10(np.mean(np.abs(y[settled] - ref[settled]) ** 2) / np.mean(np.abs(ref) ** 2))
    worst_db = 20 * np.log10(np.max(np.abs(y[settled] - ref[settled])))
    assert err_db < -60.0 and worst_db < -60.0
    # the same signal read at the unresampled times is far off: the test can tell
    plain = tones(np.arange(len(y), dtype=np.float64))
    assert 20 * np.log10(np.max(np.abs(y[settled] - plain[settled]))) > -20.0


@pytest.mark.parametrize("ppm", [200.0, -120.0, 20.0])
def test_a_tone_comes_out_at_f_times_one_plus_eps(ppm: float) -> None:
    f = 0.2
    x = np.exp(2j * np.pi * f * np.arange(1 << 17))
    y = StreamResampler(ppm, 0.0, FS).process(x)[LOOKAHEAD:]
    measured = peak_frequency(y)
    assert measured == pytest.approx(f * (1 + ppm * 1e-6), abs=2e-7)  # the shift itself is 4e-6..4e-5
    assert abs(peak_frequency(x) - f) < 2e-7


@pytest.mark.parametrize("ppm", [200.0, -200.0, 3.3])
def test_output_count_over_a_long_stream_is_n_over_one_plus_eps(ppm: float) -> None:
    n_in = 2_000_000
    r = StreamResampler(ppm, 0.0, FS)
    total = sum(len(r.process(np.zeros(100_000))) for _ in range(n_in // 100_000))
    # every output whose interpolator window the input covers: p_n + LOOKAHEAD < n_in
    assert abs(total - (n_in - LOOKAHEAD) / (1 + ppm * 1e-6)) <= 1
    assert (r.samples_in, r.samples_out) == (n_in, total)


def test_drift_changes_the_rate_over_time() -> None:
    f, drift = 0.2, 10.0  # ppm per second: eps runs from 0 to ~20 ppm over the 2 s
    x = np.exp(2j * np.pi * f * np.arange(2_000_000))
    r = StreamResampler(0.0, drift, FS)
    y = r.process(x)
    seg = 1 << 16
    early, late = peak_frequency(y[LOOKAHEAD:LOOKAHEAD + seg]), peak_frequency(y[-seg:])
    t_early, t_late = (LOOKAHEAD + seg / 2) / FS, (len(y) - seg / 2) / FS
    assert early == pytest.approx(f * (1 + drift * t_early * 1e-6), abs=3e-7)
    assert late == pytest.approx(f * (1 + drift * t_late * 1e-6), abs=3e-7)
    assert late - early == pytest.approx(f * drift * (t_late - t_early) * 1e-6, rel=0.1)
    assert r.ppm_at(1_000_000) == pytest.approx(10.0)


@pytest.mark.parametrize(("ppm", "drift"), [(60.0, 0.0), (-90.0, 4.0), (0.0, -10.0)])
def test_chunking_gives_the_one_shot_output_exactly(ppm: float, drift: float) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(50_000) + 1j * rng.standard_normal(50_000)
    whole = StreamResampler(ppm, drift, FS).process(x)
    r = StreamResampler(ppm, drift, FS)
    cuts = [0, 1, 2, 7, 9, 10, 700, 701, 5000, 5017, 33_333, 49_999, 50_000]
    chunks = [r.process(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    assert [len(c) for c in chunks[:3]] == [0, 0, 0]  # the first output waits for its window (9 inputs)
    assert np.array_equal(np.concatenate(chunks), whole)


@pytest.mark.parametrize("ppm", [150.0, -150.0])
def test_feeding_input_samples_for_k_gives_exactly_k(ppm: float) -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal(40_000) + 1j * rng.standard_normal(40_000)
    whole = StreamResampler(ppm, 2.0, FS).process(x)
    r = StreamResampler(ppm, 2.0, FS)
    parts, used = [], 0
    for k in rng.integers(1, 3000, 20):
        need = r.input_samples_for(int(k))
        parts.append(r.process(x[used:used + need], int(k)))
        used += need
        assert len(parts[-1]) == k
        assert r.input_samples_for(1) >= 0
    got = np.concatenate(parts)
    assert np.array_equal(got, whole[:len(got)])
    assert used == pytest.approx(len(got) * (1 + ppm * 1e-6) + LOOKAHEAD, abs=2)


def test_set_rate_keeps_the_time_pointer_continuous() -> None:
    x = tones(np.arange(100_000))
    r = StreamResampler(100.0, 0.0, FS)
    first = r.process(x[:40_000])
    n0 = r.samples_out
    p0 = r.position(n0)
    r.set_rate(-50.0)
    assert r.position(n0) == pytest.approx(p0, abs=1e-9)
    assert r.position(n0 + 10_000) - p0 == pytest.approx(10_000 * (1 - 50e-6), abs=1e-9)
    second = r.process(x[40_000:])
    ref = tones(np.concatenate([positions(np.arange(n0), 100.0, 0.0),
                                p0 + np.arange(len(second)) * (1 - 50e-6)]))
    y = np.concatenate([first, second])
    assert np.max(np.abs(y[LOOKAHEAD:] - ref[LOOKAHEAD:])) < 1e-3
