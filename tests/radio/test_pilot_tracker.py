"""PilotTracker on synthetic bursts: RRC-shaped QAM with a pilot grid, sample clock offset (SCO) applied by
evaluating the pulse at stretched instants, residual CFO and AWGN, then the receiver's matched filter."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pytest

from radio.interpolate import interpolate
from radio.modulation import constellation
from radio.pilot_tracker import (PilotTracker, TrackerConfig, detector_slope, detector_slopes, loop_gains,
                                 track)
from radio.pulse import matched_filter, rrc_taps

SPS = 4
FS_HZ = 1.0e6
PERIOD = 256
GROUP = 4
OVERSAMPLE = 64  # pulse table resolution (linear interpolation error about -95 dB)


@numba.njit(cache=True)
def _stretched_kernel(symbols: np.ndarray, times: np.ndarray, table: np.ndarray, q: float, half: float,
                      out: np.ndarray) -> None:
    """out[n] += sum_k symbols[k] g(n - times[k]), g the pulse tabulated at q points per sample."""
    center = (table.size - 1) // 2
    n_out = out.size
    for k in range(symbols.size):
        t = times[k]
        lo = max(int(np.ceil(t - half)), 0)
        hi = min(int(np.floor(t + half)), n_out - 1)
        s = symbols[k]
        for n in range(lo, hi + 1):
            x = (n - t) * q + center
            i = int(x)
            if i < 0 or i + 1 >= table.size:
                continue
            fr = x - i
            out[n] += s * (table[i] * (1.0 - fr) + table[i + 1] * fr)


@dataclass
class Burst:
    y: np.ndarray  # (n,) complex64 matched-filter output
    symbols: np.ndarray  # (N,) complex transmitted symbols
    times: np.ndarray  # (N,) true sample position of each symbol
    pilot_idx: np.ndarray  # (G, 4)
    pilot_val: np.ndarray  # (G, 4)
    data_idx: np.ndarray  # (d,)


def pilot_grid(n_groups: int, s0: int = 0) -> np.ndarray:
    """(n_groups, 4) pilot symbol indices: a group every PERIOD symbols from s0."""
    return s0 + PERIOD * np.arange(n_groups)[:, None] + np.arange(GROUP)[None, :]


def make_burst(n_symbols: int, modulation: str = "64qam", snr_db: float | None = 30.0, ppm: float = 0.0,
               ppm_end: float | None = None, cfo_hz: float = 0.0, rolloff: float = 0.25, t0: float = 100.3,
               seed: int = 0, silent_data: bool = False, gain_step: tuple[int, complex] | None = None) -> Burst:
    """A burst of about n_symbols (whole pilot periods plus a closing group), symbol 0 at sample t0.

    The SCO goes linearly from ppm to ppm_end (default: constant) over the burst. gain_step (sample, gain):
    the channel's gain jumps from 1 to `gain` at that received sample (block fading).
    """
    rng = np.random.default_rng(seed)
    groups = n_symbols // PERIOD + 1
    n = (groups - 1) * PERIOD + GROUP
    pil = pilot_grid(groups)
    c = constellation(modulation)
    sym = rng.choice(c.points, n).astype(np.complex128)
    pval = rng.choice([-1.0, 1.0], pil.shape).astype(np.complex128)
    if silent_data:
        sym[:] = 0
    sym[pil.ravel()] = pval.ravel()
    is_data = np.ones(n, bool)
    is_data[pil.ravel()] = False
    k = np.arange(n, dtype=np.float64)
    e0 = ppm * 1e-6
    e1 = e0 if ppm_end is None else ppm_end * 1e-6
    times = t0 + SPS * (k * (1.0 + e0) + (e1 - e0) * k * k / (2.0 * n))
    table = rrc_taps(SPS * OVERSAMPLE, rolloff).astype(np.float64) * np.sqrt(OVERSAMPLE)
    half = (table.size - 1) / 2 / OVERSAMPLE
    tx = np.zeros(int(times[-1] + t0 + 2 * half), np.complex128)
    _stretched_kernel(sym, times, table, float(OVERSAMPLE), half, tx)
    tx *= np.exp(2j * np.pi * cfo_hz / FS_HZ * np.arange(tx.size) + 0.7j)
    if gain_step is not None:
        tx[gain_step[0]:] *= gain_step[1]
    if snr_db is not None:
        sigma = np.sqrt(10 ** (-snr_db / 10) / 2)
        tx += sigma * (rng.standard_normal(tx.size) + 1j * rng.standard_normal(tx.size))
    y = matched_filter(tx.astype(np.complex64), SPS, rolloff)
    return Burst(y, sym, times, pil, pval, np.flatnonzero(is_data))


def evm_snr_db(rx: np.ndarray, tx: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.abs(tx) ** 2) / np.mean(np.abs(rx - tx) ** 2)))


def symbol_errors(rx: np.ndarray, tx: np.ndarray, modulation: str) -> int:
    pts = constellation(modulation).points
    nearest = pts[np.argmin(np.abs(rx[:, None] - pts[None, :]), axis=1)]
    return int(np.count_nonzero(np.abs(nearest - tx) > 1e-3))


def run(b: Burst, bits: int = 6, rolloff: float = 0.25, eps0: float = 0.0, cfo0_hz: float = 0.0, t0: float = 100.3,
        **cfg: float):
    config = TrackerConfig(samples_per_symbol=SPS, rolloff=rolloff, sample_rate_hz=FS_HZ, **cfg)
    return track(b.y, t0, 0, b.pilot_idx, b.pilot_val, b.data_idx, bits, eps0=eps0, cfo0_hz=cfo0_hz,
                 config=config)


# --- loop and detector constants -------------------------------------------------------------------

def test_loop_gains_match_textbook_values() -> None:
    kp, ki = loop_gains(0.01, 1 / np.sqrt(2))
    theta = 0.01 / (1 / np.sqrt(2) + np.sqrt(2) / 4)
    assert kp == pytest.approx(4 * theta / np.sqrt(2) / (1 + np.sqrt(2) * theta + theta**2))
    assert ki == pytest.approx(4 * theta**2 / (1 + np.sqrt(2) * theta + theta**2))


@pytest.mark.parametrize("rolloff", [0.15, 0.25, 0.35])
@pytest.mark.parametrize("offset", [-0.3, 0.2])
def test_detector_reads_timing_error_in_samples(rolloff: float, offset: float) -> None:
    """Pilots alone (data symbols silent: no self-noise), sampled `offset` samples early: each group's
    detector output, divided by its pattern's slope, reads `offset` (the S-curve is linear to ~0.3);
    patterns weaker than one isolated pulse (e.g. all +1: 0.2 of it) are read down-weighted, not amplified."""
    b = make_burst(8192, snr_db=None, rolloff=rolloff, silent_data=True)
    config = TrackerConfig(rolloff=rolloff, timing_bandwidth=1e-9, acquisition=False)
    kappa = detector_slopes(config)
    assert kappa[0] == pytest.approx(detector_slope(config)) and kappa[0] > 0
    res = track(b.y, 100.3 - offset, 0, b.pilot_idx, b.pilot_val, b.data_idx[:0], config=config)
    lag = np.abs(np.arange(GROUP)[:, None] - np.arange(GROUP)[None, :])
    strength = np.einsum("gi,gj,ij->g", b.pilot_val.real, b.pilot_val.real, kappa[lag]) / (GROUP * kappa[0])
    expected = offset * np.minimum(strength, 1.0)
    assert strength.min() < 0.3 and strength.max() > 2.0  # both kinds of pattern occur
    np.testing.assert_allclose(res.group_timing_error_samples, expected, atol=0.02 * abs(offset) + 2e-3)


def test_pilot_only_timing_error_has_data_self_noise() -> None:
    """With random data next to the groups, one group's early-late reading scatters by ~0.35 samples
    (the reason decisions join the detector); it is still unbiased."""
    b = make_burst(65536, "qpsk", snr_db=None)
    config = TrackerConfig(timing_bandwidth=1e-9, acquisition=False)
    res = track(b.y, 100.3, 0, b.pilot_idx, b.pilot_val, b.data_idx[:0], config=config)
    e = res.group_timing_error_samples
    assert 0.25 < np.std(e) < 0.45
    assert abs(np.mean(e)) < 3 * np.std(e) / np.sqrt(e.size)


# --- whole bursts --------------------------------------------------------------------------------

def ideal_symbols(b: Burst, cfo_hz: float = 0.0) -> np.ndarray:
    """Data symbols sampled at the true instants with the true carrier phase removed."""
    t = b.times[b.data_idx]
    return interpolate(b.y, t) * np.exp(-1j * (2 * np.pi * cfo_hz / FS_HZ * t + 0.7))


@pytest.mark.parametrize("modulation, ppm, cfo_hz, rolloff", [
    ("64qam", 250.0, 300.0, 0.25),  # 100 k symbols at 250 ppm: the drift of a 2 s burst at 50 ppm (100 samples)
    ("64qam", -250.0, -450.0, 0.15),
    ("64qam", 50.0, 120.0, 0.15),
    ("16qam", -50.0, 0.0, 0.25),
])
def test_burst_at_30db_decodes_as_without_offsets(modulation: str, ppm: float, cfo_hz: float,
                                                   rolloff: float) -> None:
    b = make_burst(100_000, modulation, 30.0, ppm=ppm, cfo_hz=cfo_hz, rolloff=rolloff, seed=1)
    ref = make_burst(100_000, modulation, 30.0, rolloff=rolloff, seed=1)
    tx = b.symbols[b.data_idx]
    bits = constellation(modulation).bits_per_symbol
    res = run(b, bits, rolloff)
    base = run(ref, bits, rolloff)
    assert symbol_errors(res.symbols, tx, modulation) == 0
    assert evm_snr_db(res.symbols, tx) > evm_snr_db(base.symbols, tx) - 0.5
    assert evm_snr_db(base.symbols, tx) > evm_snr_db(ideal_symbols(ref), tx) - 0.3
    assert res.eps_ppm == pytest.approx(ppm, abs=1.0)
    assert res.cfo_hz == pytest.approx(cfo_hz, abs=2.0)
    # the tracked times follow the true ones to a few hundredths of a sample once acquired
    true_t = np.interp(res.group_symbol, np.arange(b.times.size), b.times)
    assert np.sqrt(np.mean((res.group_time_samples[16:] - true_t[16:]) ** 2)) < 0.03


@pytest.mark.parametrize("ppm", [0.0, 20.0, 50.0])
def test_low_snr_qpsk_tracks(ppm: float) -> None:
    """QPSK at 5 dB: decisions are often wrong, the loops still lock; EVM within 0.5 dB of ideal sampling."""
    b = make_burst(50_000, "qpsk", 5.0, ppm=ppm, cfo_hz=80.0, seed=2)
    tx = b.symbols[b.data_idx]
    res = run(b, 2)
    assert res.eps_ppm == pytest.approx(ppm, abs=5.0)
    assert evm_snr_db(res.symbols, tx) > evm_snr_db(ideal_symbols(b, 80.0), tx) - 0.5


def test_drifting_sco_is_followed() -> None:
    """eps ramps from 40 to 60 ppm over 100 k symbols (0.4 s: far faster than a crystal drifts)."""
    b = make_burst(100_000, "64qam", 30.0, ppm=40.0, ppm_end=60.0, cfo_hz=50.0, seed=3)
    tx = b.symbols[b.data_idx]
    res = run(b, 6)
    assert symbol_errors(res.symbols, tx, "64qam") == 0
    assert evm_snr_db(res.symbols, tx) > evm_snr_db(ideal_symbols(b, 50.0), tx) - 0.3
    true_eps = 40.0 + 20.0 * res.group_symbol / b.times.size
    assert np.max(np.abs(res.group_eps[32:] * 1e6 - true_eps[32:])) < 3.0


def test_cfo_beyond_the_pilot_grid_needs_a_prior() -> None:
    """The group grid aliases at +-Rs / 512 = 488 Hz: 1 kHz is tracked when a prior (e.g. the LTF's fine
    CFO) brings it within that range, and not without it."""
    b = make_burst(30_000, "64qam", 30.0, ppm=50.0, cfo_hz=1000.0, seed=4)
    tx = b.symbols[b.data_idx]
    with_prior = run(b, 6, cfo0_hz=850.0)
    assert symbol_errors(with_prior.symbols, tx, "64qam") == 0
    assert with_prior.cfo_hz == pytest.approx(1000.0, abs=2.0)
    without = run(b, 6)
    assert symbol_errors(without.symbols, tx, "64qam") > 1000


def test_locked_clock_prior_is_used() -> None:
    """With eps0 known (locked clocks), the estimate starts and stays there."""
    b = make_burst(20_000, "64qam", 30.0, ppm=37.0, seed=5)
    res = run(b, 6, eps0=37e-6, eps0_prior_groups=100.0)
    assert np.max(np.abs(res.group_eps * 1e6 - 37.0)) < 2.0
    assert np.max(np.abs(run(b, 6, eps0=37e-6).group_eps * 1e6 - 37.0)) > 5.0  # without: re-acquired


def test_pilot_only_mode_tracks_but_is_noisier() -> None:
    b = make_burst(60_000, "64qam", 30.0, ppm=50.0, seed=6)
    tx = b.symbols[b.data_idx]
    pilots_only = run(b, 0)
    dd = run(b, 6)
    assert pilots_only.eps_ppm == pytest.approx(50.0, abs=3.0)
    assert evm_snr_db(dd.symbols, tx) > evm_snr_db(pilots_only.symbols, tx) + 1.5


# --- streaming -------------------------------------------------------------------------------------

def test_segments_with_carried_state_equal_one_call() -> None:
    """Segments of 16 pilot periods (sharing their boundary group), each with only its own samples plus
    margins, give the one-call symbols and state."""
    b = make_burst(40_000, "64qam", 25.0, ppm=-120.0, cfo_hz=-210.0, seed=7)
    config = TrackerConfig()
    whole = PilotTracker.start(100.3, 0, config=config).process(b.y, 0, b.pilot_idx, b.pilot_val, b.data_idx, 6)
    tracker = PilotTracker.start(100.3, 0, config=config)
    parts = []
    n_groups = b.pilot_idx.shape[0]
    margin = 64
    for g0 in range(0, n_groups - 1, 16):
        g1 = min(g0 + 16, n_groups - 1)  # groups g0..g1 inclusive; g0 was processed by the previous call
        lo_sym, hi_sym = b.pilot_idx[g0, 0], b.pilot_idx[g1, -1]
        data = b.data_idx[(b.data_idx > lo_sym) & (b.data_idx < hi_sym)]
        lo = max(int(100.3 + SPS * lo_sym * 0.999) - margin, 0)
        hi = int(100.3 + SPS * hi_sym * 1.001) + margin
        res = tracker.process(b.y[lo:hi], lo, b.pilot_idx[g0:g1 + 1], b.pilot_val[g0:g1 + 1], data, 6)
        parts.append(res.symbols)
    np.testing.assert_allclose(np.concatenate(parts), whole.symbols, rtol=0, atol=1e-5)
    assert tracker.state.groups == whole.state.groups
    assert tracker.state.eps == pytest.approx(whole.state.eps, rel=1e-9)
    assert tracker.state.time_samples == pytest.approx(whole.state.time_samples, abs=1e-9)


def test_unsorted_data_and_per_symbol_bits() -> None:
    b = make_burst(8_000, "64qam", 30.0, ppm=20.0, seed=8)
    order = np.random.default_rng(0).permutation(b.data_idx.size)
    bits = np.full(b.data_idx.size, 6, np.int8)
    sorted_res = run(b, 6)
    config = TrackerConfig()
    shuffled = track(b.y, 100.3, 0, b.pilot_idx, b.pilot_val, b.data_idx[order], bits[order], config=config)
    np.testing.assert_array_equal(shuffled.symbols, sorted_res.symbols[order])


def test_bad_calls_raise_and_leave_the_state() -> None:
    b = make_burst(4_000, "qpsk", 30.0, seed=9)
    tracker = PilotTracker.start(100.3, 0)
    before = tracker.state
    with pytest.raises(ValueError, match="must lie in"):  # data after the last group given
        tracker.process(b.y, 0, b.pilot_idx[:3], b.pilot_val[:3], b.data_idx[b.data_idx > 600], 2)
    with pytest.raises(ValueError, match="outside y"):  # samples missing for group 3
        tracker.process(b.y[:2500], 0, b.pilot_idx[:5], b.pilot_val[:5], b.data_idx[:10], 2)
    assert tracker.state == before
    with pytest.raises(ValueError, match="0, 1, 2, 4, 6 or 8"):
        tracker.process(b.y, 0, b.pilot_idx, b.pilot_val, b.data_idx, 3)
    res = tracker.process(b.y, 0, b.pilot_idx, b.pilot_val, b.data_idx, 2)
    assert res.state.groups == b.pilot_idx.shape[0]
    # groups already processed are skipped; data before the anchor are refused
    again = tracker.process(b.y, 0, b.pilot_idx, b.pilot_val, b.data_idx[:0], 2)
    assert again.group_symbol.size == 0 and tracker.state == res.state
    with pytest.raises(ValueError, match="must lie in"):
        tracker.process(b.y, 0, b.pilot_idx, b.pilot_val, b.data_idx[-5:], 2)


# --- gain jumps (block fading) ----------------------------------------------------------------------

STEP_SYMBOL = 20 * PERIOD + 101  # inside the interval before group 21
STEP_GAIN = 0.6 * np.exp(0.9j)  # -4.4 dB and 52 degrees: a Rician K = 6 dB block boundary, typical


def test_gain_jump_is_followed_at_once_and_split_where_it_falls() -> None:
    """A gain step inside a pilot interval: one jump is declared at the group after it, the symbols before
    the step keep the old gain and those after get the new one (split by decisions), and the EVM after the
    step is within 0.5 dB of the EVM before it less the step's SNR drop; with jumps off, the loops take tens of
    groups to follow."""
    step = (int(100.3 + SPS * STEP_SYMBOL), STEP_GAIN)
    b = make_burst(20_000, "64qam", 30.0, ppm=20.0, cfo_hz=40.0, seed=11, gain_step=step)
    tx = b.symbols[b.data_idx]
    res = run(b, 6)
    assert res.state.jumps == 1 and res.group_jump[21] and res.group_jump.sum() == 1
    before, after = b.data_idx < STEP_SYMBOL - 2, b.data_idx > STEP_SYMBOL + 2
    assert symbol_errors(res.symbols[before], tx[before], "64qam") == 0
    soon = after & (b.data_idx < STEP_SYMBOL + 2 * PERIOD)  # the gain of one group at 25.6 dB, then two
    assert symbol_errors(res.symbols[soon], tx[soon], "64qam") == 0
    drop_db = -20 * np.log10(abs(STEP_GAIN))  # the SNR after the step is this much lower
    assert evm_snr_db(res.symbols[after], tx[after]) > evm_snr_db(res.symbols[before], tx[before]) - drop_db - 0.5
    split = np.flatnonzero(np.abs(np.diff(res.symbol_amplitude)) > 0.2)  # old gain -> new gain
    assert split.size == 1 and abs(b.data_idx[split[0] + 1] - STEP_SYMBOL) <= 3
    amp_after = res.symbol_amplitude[after]
    assert np.all(np.abs(amp_after / np.median(amp_after) - 1.0) < 0.1)
    off = run(b, 6, jump_threshold=0.0)
    first = after & (b.data_idx < STEP_SYMBOL + 10 * PERIOD)
    assert evm_snr_db(off.symbols[first], tx[first]) < evm_snr_db(res.symbols[first], tx[first]) - 10.0


@pytest.mark.parametrize("modulation,snr_db,bits", [("bpsk", -2.0, 1), ("qpsk", 3.0, 2), ("64qam", 30.0, 6)])
def test_no_jump_is_declared_on_a_steady_channel(modulation: str, snr_db: float, bits: int) -> None:
    """Noise alone never passes the jump test (threshold 12 noise variances of a group plus the prediction's)."""
    b = make_burst(120_000, modulation, snr_db, ppm=30.0, cfo_hz=60.0, seed=12)
    res = run(b, bits)
    assert res.state.jumps == 0 and res.state.groups == b.pilot_idx.shape[0]
    assert res.state.noise_var == pytest.approx(10 ** (-snr_db / 10), rel=0.15)  # the pilots' residual noise
