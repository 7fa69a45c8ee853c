"""Preamble synchronization of a v2 burst: CFO hypothesis and frame version, LTF timing, fine CFO, LTF SNR.

A Schmidl-Cox detection (radio/acquisition.py: `acquire`) gives a coarse CFO modulo the STF's ambiguity
fs / L, a few kHz off at -2 dB. `synchronize` tests every hypothesis f + m fs / L within the configured range
against *both* LTFs (v1 `ltf_symbols`, v2 `ltf2_symbols`) on the preamble alone (one FFT of the segment,
inverse FFTs per hypothesis and LTF: matched filter and LTF correlation in one product, the LTF in pieces
summed non-coherently so that the coarse error does not fade the peak), so the winning pair gives the CFO
and the frame version before any header is decoded. A first timing pass on 16-symbol pieces of that LTF
measures the coarse error from their phase steps (+-7.8 kHz); then the whole LTF gives the timing
(parabolic fractional refinement) and the false-alarm test, its two periods the fine CFO, and a fit on its
128 known symbols the preamble SNR. Every phase follows absolute stream indices, so the result does not
depend on how the stream was chunked.
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
from radio.sync import WINDOW_PERIODS, Detection, fine_cfo, ltf_timing, stf_samples

LTF_SYMBOLS = LTF_LENGTH * LTF_REPEATS
LTF_MIN_PEAK = 0.35  # normalized LTF correlation below which a detection is a false alarm
LTF_SEGMENTS = 8  # pieces of the CFO-tolerant first timing pass (16 symbols each)
HYPOTHESIS_PIECES = 4  # pieces of the LTF summed non-coherently when CFO hypotheses and versions compete
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
def _mf_ltf_response(nfft: int, samples_per_symbol: int, rolloff: float, version: int,
                     pieces: int = 1) -> np.ndarray:
    """(pieces, nfft) complex128: matched filter ('same' alignment) times the conjugate spectrum of each of
    `pieces` consecutive parts of the LTF's symbol taps (at their place in the LTF); applied to a segment's
    spectrum, the inverse FFT of row k is part k's correlation at every start of the LTF."""
    sps, taps = samples_per_symbol, rrc_taps(samples_per_symbol, rolloff).astype(np.float64)
    half = (taps.size - 1) // 2
    h = np.zeros(nfft)
    h[: half + 1] = taps[half:]
    h[-half:] = taps[:half]
    symbols = ltf_reference(version)
    per = symbols.size // pieces
    out = np.empty((pieces, nfft), np.complex128)
    for k in range(pieces):
        ref = np.zeros(nfft, np.complex128)
        ref[k * per * sps: ((k + 1) * per - 1) * sps + 1: sps] = symbols[k * per:(k + 1) * per]
        out[k] = sfft.fft(h) * np.conj(sfft.fft(ref))
    return out


def best_hypothesis(seg: np.ndarray, lo: int, hi: int, coarse_cycles: float,
                    settings: AcquisitionSettings) -> tuple[float, int]:
    """(CFO cycles per sample, version): the hypothesis and LTF with the largest correlation peak over
    starts [lo, hi) of the raw (n,) segment, the LTF correlated in HYPOTHESIS_PIECES parts summed
    non-coherently (a coarse CFO a few kHz off fades a coherent 128-symbol peak into the noise at -2 dB)."""
    m = hypotheses(coarse_cycles, settings)
    sps, lag = settings.samples_per_symbol, settings.lag
    nfft = sfft.next_fast_len(-(-(seg.size + 2 * len(rrc_taps(sps, settings.rolloff))) // lag)) * lag
    x = sfft.fft(seg * phasor(0.0, -2 * np.pi * coarse_cycles, seg.size), nfft)
    span = (LTF_SYMBOLS - 1) * sps + 1
    lo, hi = max(lo, 0), min(hi, seg.size - span)
    best, choice = -1.0, (coarse_cycles, 2)
    for version in (2, 1):
        g = _mf_ltf_response(nfft, sps, settings.rolloff, version, HYPOTHESIS_PIECES)
        for k in m:
            c = sfft.ifft(np.roll(x, -int(k) * nfft // lag)[None, :] * g, axis=1)[:, lo:hi]
            peak = float(np.sum(c.real ** 2 + c.imag ** 2, axis=0).max(initial=0.0))
            if peak > best:
                best, choice = peak, (coarse_cycles + float(k) * settings.ambiguity_cycles, version)
    return choice


def ltf_timing_segments(y: np.ndarray, samples_per_symbol: int, lo: int, hi: int, reference: np.ndarray,
                        segments: int = LTF_SEGMENTS) -> tuple[int, float]:
    """CFO-tolerant LTF timing in a matched-filtered (n,) array: the best start in [lo, hi) of `reference` by
    the energy of its `segments` coherent pieces summed non-coherently, and the residual CFO (cycles per
    sample) from the phase step between consecutive pieces there; (-1, 0.0) if no start fits.

    A coherent 128-symbol correlation fades as sinc(pi df 512 / fs): a coarse CFO 1.6 kHz off at 1 MS/s
    leaves a fifth of the peak, lost in the noise at -2 dB. Pieces of 16 symbols lose under 5 % there, and
    their phase step measures the offset unambiguously within +-fs / (2 * 16 sps) (+-7.8 kHz; ~0.1 kHz rms
    at -2 dB), where the STF's lag-32 autocorrelation gave ~1 kHz."""
    sps = samples_per_symbol
    per = reference.size // segments
    span = (per - 1) * sps + 1
    lo, hi = max(lo, 0), min(hi, y.size - (reference.size - 1) * sps - 1)
    if hi <= lo:
        return -1, 0.0
    c = np.empty((segments, hi - lo), np.complex128)
    for k in range(segments):
        taps = np.zeros(span, np.complex64)
        taps[::sps] = reference[k * per:(k + 1) * per]
        first = lo + k * per * sps
        c[k] = np.correlate(y[first:first + hi - lo + span - 1], taps, mode="valid")
    j = int(np.argmax(np.sum(np.abs(c) ** 2, axis=0)))
    step = np.sum(c[1:, j] * np.conj(c[:-1, j]))
    return lo + j, float(np.angle(step) / (2 * np.pi * per * sps))


def synchronize(seg: np.ndarray, first_sample: int, lo: int, hi: int, coarse_cycles: float,
                settings: AcquisitionSettings) -> PreambleSync | None:
    """Synchronize to the preamble whose LTF starts in [lo, hi) of the raw (n,) segment `seg` (absolute
    index of seg[0]: first_sample); None when no LTF correlates (a false alarm)."""
    sps = settings.samples_per_symbol
    coarse = round(coarse_cycles / CFO_QUANTUM_CYCLES) * CFO_QUANTUM_CYCLES
    cfo, version = best_hypothesis(seg, lo, hi, coarse, settings)
    ref = ltf_reference(version)
    y = matched_filter(rotate(seg, cfo, first_sample), sps, settings.rolloff)
    index, residual = ltf_timing_segments(y, sps, lo, hi, ref)  # a short detector run can be kHz off
    if index < 0:
        return None
    cfo += residual
    y = matched_filter(rotate(seg, cfo, first_sample), sps, settings.rolloff)
    index, frac, peak = ltf_timing(y, sps, lo, hi, ref)
    if index < 0 or peak < LTF_MIN_PEAK:
        return None
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
