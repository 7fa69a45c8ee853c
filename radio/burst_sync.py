"""Preamble synchronization of a v2 burst: CFO hypothesis and frame version, LTF timing, fine CFO, LTF SNR.

A Schmidl-Cox detection (radio/acquisition.py: `acquire`) gives a coarse CFO modulo the STF's ambiguity
fs / L. `synchronize` tests every hypothesis f + m fs / L within the configured range against *both* LTFs
(v1 `ltf_symbols`, v2 `ltf2_symbols`) on the preamble alone (one FFT of the segment, one inverse FFT per
hypothesis and LTF: matched filter and LTF correlation in one product), so the winning pair gives the CFO
and the frame version before any header is decoded. Then the LTF of that version gives the timing
(parabolic fractional refinement), its two periods the fine CFO, and a fit on its 128 known symbols the
preamble SNR. Every phase follows absolute stream indices, so the result does not depend on how the
stream was chunked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from radio.acquisition import AcquisitionSettings, hypotheses
from radio.interpolate import interpolate
from radio.phasor import phasor
from radio.preamble import LTF_LENGTH, LTF_REPEATS, STF_PERIOD, ltf2_symbols, ltf_symbols, stf_symbols
from radio.pulse import filter_delay, matched_filter, rrc_taps
from radio.snr import data_aided
from radio.sync import WINDOW_PERIODS, Detection, fine_cfo, stf_samples

LTF_SYMBOLS = LTF_LENGTH * LTF_REPEATS
LTF_MIN_PEAK = 0.35  # normalized LTF correlation below which a detection is a false alarm
CFO_QUANTUM_CYCLES = 1e-9  # the detector's coarse CFO is rounded to this (chunking-proof: sums differ in ulps)


def ltf_reference(version: int) -> np.ndarray:
    """(128,) complex64 LTF symbols of frame version 1 or 2."""
    return ltf_symbols() if version == 1 else ltf2_symbols()


@dataclass(frozen=True)
class PreambleSync:
    """What the preamble says: version, timing, CFO and the LTF's gain, noise and SNR (matched-filter units)."""

    version: int  # 1: v1 packet (LTF), 2: v2 burst (LTF2)
    ltf_time_samples: float  # absolute fractional sample of the LTF's first symbol peak (burst symbol 128)
    cfo_cycles: float  # cycles per sample, raw stream frame: hypothesis plus fine estimate
    peak: float  # normalized LTF correlation peak in [0, 1]
    ltf_gain: complex  # of the LTF in the stream derotated by cfo_cycles, absolute-index phase (`rotate`)
    ltf_noise: float
    ltf_snr_db: float


def search_range(det: Detection, settings: AcquisitionSettings) -> tuple[int, int, int, int]:
    """(lo, hi, a, b) for a detection: LTF starts [lo, hi) to search and the raw samples [a, b) needed
    (the STF before the earliest start included), all in the detection's buffer coordinates (the STF
    starts between run start - window - lag and the end of the metric's plateau; as radio/receiver.py)."""
    sps = settings.samples_per_symbol
    lag = STF_PERIOD * sps
    window = WINDOW_PERIODS * lag
    stf = stf_samples(sps)
    pad = 2 * filter_delay(sps, settings.rolloff)
    lo = det.run_start - window - lag + stf
    hi = max(det.run_end, det.run_start + stf - window - lag) + stf + 2 * lag
    return lo, hi, max(lo - stf - pad, 0), hi + LTF_SYMBOLS * sps + pad


def rotate(samples: np.ndarray, cycles: float, first_sample: int) -> np.ndarray:
    """(n,) complex64 samples times exp(-j 2 pi cycles (first_sample + k)): absolute-index phase."""
    phase0 = -2 * np.pi * ((cycles * first_sample) % 1.0)
    return samples * phasor(phase0, -2 * np.pi * cycles, samples.size)


@lru_cache(maxsize=32)
def _mf_ltf_response(nfft: int, samples_per_symbol: int, rolloff: float, version: int) -> np.ndarray:
    """(nfft,) complex128: matched filter ('same' alignment) times the conjugate spectrum of the LTF's
    symbol taps; applied to a segment's spectrum, its inverse FFT is the LTF correlation at every start."""
    sps, taps = samples_per_symbol, rrc_taps(samples_per_symbol, rolloff).astype(np.float64)
    half = (taps.size - 1) // 2
    h = np.zeros(nfft)
    h[: half + 1] = taps[half:]
    h[-half:] = taps[:half]
    ref = np.zeros(nfft, np.complex128)
    ref[: (LTF_SYMBOLS - 1) * sps + 1: sps] = ltf_reference(version)
    return sfft.fft(h) * np.conj(sfft.fft(ref))


def best_hypothesis(seg: np.ndarray, lo: int, hi: int, coarse_cycles: float,
                    settings: AcquisitionSettings) -> tuple[float, int]:
    """(CFO cycles per sample, version): the hypothesis and LTF with the largest correlation peak over
    starts [lo, hi) of the raw (n,) segment."""
    m = hypotheses(coarse_cycles, settings)
    sps, lag = settings.samples_per_symbol, settings.lag
    nfft = sfft.next_fast_len(-(-(seg.size + 2 * len(rrc_taps(sps, settings.rolloff))) // lag)) * lag
    x = sfft.fft(seg * phasor(0.0, -2 * np.pi * coarse_cycles, seg.size), nfft)
    span = (LTF_SYMBOLS - 1) * sps + 1
    lo, hi = max(lo, 0), min(hi, seg.size - span)
    best, choice = -1.0, (coarse_cycles, 2)
    for version in (2, 1):
        g = _mf_ltf_response(nfft, sps, settings.rolloff, version)
        for k in m:
            peak = float(np.abs(sfft.ifft(np.roll(x, -int(k) * nfft // lag) * g)[lo:hi]).max(initial=0.0))
            if peak > best:
                best, choice = peak, (coarse_cycles + float(k) * settings.ambiguity_cycles, version)
    return choice


def ltf_timing(y: np.ndarray, samples_per_symbol: int, lo: int, hi: int,
               reference: np.ndarray) -> tuple[int, float, float]:
    """Best start in [lo, hi) of `reference` (symbols) in a matched-filtered, CFO-corrected (n,) array:
    (integer index, fractional offset in [-0.5, 0.5], normalized peak in [0, 1]); index -1 if none fits."""
    sps = samples_per_symbol
    span = (reference.size - 1) * sps + 1
    lo, hi = max(lo, 1), min(hi, y.size - span - 1)
    if hi <= lo:
        return -1, 0.0, 0.0
    taps = np.zeros(span, np.complex64)
    taps[::sps] = reference
    seg = y[lo - 1:hi + span]
    corr = np.abs(np.correlate(seg, taps, mode="valid"))  # corr[j] <-> start lo - 1 + j
    j = int(np.argmax(corr[1:-1])) + 1
    a, b, c = corr[j - 1], corr[j], corr[j + 1]
    denom = a - 2 * b + c
    frac = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
    energy = np.sqrt(np.sum(np.abs(seg[j:j + span:sps]) ** 2) * reference.size)
    return lo - 1 + j, frac, float(b / max(energy, 1e-30))


def stf_cfo(y: np.ndarray, ltf_index: int, samples_per_symbol: int) -> float:
    """Residual CFO (cycles per sample) from the lag-one-period autocorrelation over the STF that ends
    where the LTF starts (ltf_index) in a matched-filtered array; its edges (one filter span) are skipped."""
    sps = samples_per_symbol
    lag, edge = STF_PERIOD * sps, 12 * sps
    first = max(ltf_index - stf_samples(sps) + edge, 0)
    stop = ltf_index - edge
    if stop - first <= lag:
        return 0.0
    a, b = y[first: stop - lag], y[first + lag: stop]
    return float(np.angle(np.vdot(a, b)) / (2 * np.pi * lag))


def synchronize(seg: np.ndarray, first_sample: int, lo: int, hi: int, coarse_cycles: float,
                settings: AcquisitionSettings) -> PreambleSync | None:
    """Synchronize to the preamble whose LTF starts in [lo, hi) of the raw (n,) segment `seg` (absolute
    index of seg[0]: first_sample); None when no LTF correlates (a false alarm)."""
    sps = settings.samples_per_symbol
    coarse = round(coarse_cycles / CFO_QUANTUM_CYCLES) * CFO_QUANTUM_CYCLES
    cfo, version = best_hypothesis(seg, lo, hi, coarse, settings)
    ref = ltf_reference(version)
    for refine in (True, False):
        y = matched_filter(rotate(seg, cfo, first_sample), sps, settings.rolloff)
        index, frac, peak = ltf_timing(y, sps, lo, hi, ref)
        if index < 0 or (peak < LTF_MIN_PEAK and not refine):
            return None
        if refine:  # the STF's lag-L phase over its known span (a short detector run can be kHz off; the
            cfo += stf_cfo(y, index, sps)  # LTF's correlation fades with that): then timing again
    k = np.arange(LTF_SYMBOLS)
    ltf = interpolate(y, index + frac + sps * k)
    fine = fine_cfo(ltf, sps)
    start = index + frac - LTF_SYMBOLS * sps  # the STF's first symbol
    if start >= 1:  # the whole preamble against its symbols: lag LTF_SYMBOLS, a finer step within +-fs / 4 L
        k2 = np.arange(2 * LTF_SYMBOLS)
        r = interpolate(y, start + sps * k2) * np.conj(np.concatenate([stf_symbols(), ref]))
        r *= np.exp(-2j * np.pi * fine * sps * k2).astype(np.complex64)
        fine += float(np.angle(np.vdot(r[:LTF_SYMBOLS], r[LTF_SYMBOLS:])) / (2 * np.pi * LTF_SYMBOLS * sps))
    ltf = ltf * np.exp(-2j * np.pi * fine * sps * k).astype(np.complex64)
    gain, noise, snr_db = data_aided(ltf, ref)
    t0 = first_sample + index + frac
    gain *= np.exp(-2j * np.pi * ((fine * t0) % 1.0))  # in the frame derotated by cfo + fine from index 0
    return PreambleSync(version, t0, cfo + fine, peak, complex(gain), noise, snr_db)
