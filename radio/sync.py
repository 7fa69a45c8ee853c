"""Frame detection, timing and carrier frequency offset estimation from the preamble.

Detection: a Schmidl-Cox metric (lag one STF period, a numba kernel), robust to CFO; radio/acquisition.py
runs it on the matched-filtered stream derotated by the CFO prior and on a wide low-passed stream.
Timing: correlation with the LTF after coarse CFO correction, with a parabolic fractional refinement.
CFO: coarse from the STF lag-one-period autocorrelation, fine from the LTF's two repetitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from radio.preamble import LTF_LENGTH, STF_PERIOD, STF_REPEATS, ltf_symbols

WINDOW_PERIODS = 12  # STF periods summed by the detection metric


@dataclass(frozen=True)
class Detection:
    """A candidate packet: where the metric fired and the coarse CFO there."""

    run_start: int  # first sample index (in the searched array) where the metric exceeded the threshold
    run_end: int
    cfo_cycles_per_sample: float
    metric: float


def detection_metric(y: np.ndarray, samples_per_symbol: int) -> tuple[np.ndarray, np.ndarray]:
    """Schmidl-Cox metric M(d) in [0, 1] and correlation P(d) of a (n,) complex stream.

    P(d) = sum_{k=d}^{d+W-1} y[k+L] conj(y[k]), M = |P|^2 / (E0 E1), L = one STF period, W = 12 periods.
    Both outputs have length n - L - W + 1 (empty when the stream is shorter).
    """
    lag = STF_PERIOD * samples_per_symbol
    window = WINDOW_PERIODS * lag
    n = y.size - lag - window + 1
    if n <= 0:
        return np.zeros(0), np.zeros(0, np.complex128)
    metric, p = np.empty(n), np.empty(n, np.complex128)
    _metric_kernel(np.ascontiguousarray(y, np.complex64), lag, window, metric, p)
    return metric, p


@njit(cache=True)
def _metric_kernel(y: np.ndarray, lag: int, window: int, metric: np.ndarray, p: np.ndarray) -> None:
    """Fills metric and p (length n) from prefix sums in one pass (differences of prefix sums, so a
    window of exact zeros gives exactly zero, as numpy's cumsum did)."""
    n = metric.size
    total = n + window + lag
    c_prod = np.empty(total - lag + 1, np.complex128)  # prefix sums of y[k + lag] conj(y[k])
    c_pow = np.empty(total + 1)  # prefix sums of |y[k]|^2
    c_prod[0], c_pow[0] = 0.0, 0.0
    for k in range(total):
        a = np.complex128(y[k])
        c_pow[k + 1] = c_pow[k] + a.real * a.real + a.imag * a.imag
        if k < total - lag:
            b = np.complex128(y[k + lag])
            c_prod[k + 1] = c_prod[k] + b * np.conj(a)
    for d in range(n):
        pd = c_prod[d + window] - c_prod[d]
        e0 = c_pow[d + window] - c_pow[d]
        e1 = c_pow[d + lag + window] - c_pow[d + lag]
        p[d] = pd
        metric[d] = (pd.real * pd.real + pd.imag * pd.imag) / max(e0 * e1, 1e-30)


def detect(y: np.ndarray, samples_per_symbol: int, threshold: float) -> list[Detection]:
    """Runs of the metric above threshold, each with its coarse CFO (cycles per sample)."""
    metric, p = detection_metric(y, samples_per_symbol)
    above = metric > threshold
    if not above.any():
        return []
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lag = STF_PERIOD * samples_per_symbol
    # at low SNR the metric dips below the threshold inside one STF: merge runs closer than a period
    keep = np.concatenate([[True], starts[1:] - ends[:-1] > lag])
    starts, ends = starts[keep], ends[np.concatenate([keep[1:], [True]])]
    min_run = lag // 2  # a true STF keeps the metric up for about (repeats - window - 1) periods
    out = []
    for s, e in zip(starts, ends):
        if e - s < min_run:
            continue
        peak = metric[s:e].max()
        strong = s + np.flatnonzero(metric[s:e] >= 0.7 * peak)
        cfo = np.angle(p[strong].sum()) / (2 * np.pi * lag)
        out.append(Detection(int(s), int(e), float(cfo), float(peak)))
    return out


def stf_samples(samples_per_symbol: int) -> int:
    return STF_PERIOD * STF_REPEATS * samples_per_symbol


def ltf_timing(y: np.ndarray, samples_per_symbol: int, lo: int, hi: int,
               reference: np.ndarray | None = None) -> tuple[int, float, float]:
    """Best LTF start in [lo, hi) of a matched-filtered, CFO-corrected array (`reference`: the LTF's symbols,
    v1's by default; radio/burst_sync.py passes the v2 LTF2).

    Returns (integer index, fractional offset in [-0.5, 0.5], normalized peak in [0, 1]).
    """
    sps = samples_per_symbol
    ref = ltf_symbols() if reference is None else reference
    span = (ref.size - 1) * sps + 1
    lo, hi = max(lo, 1), min(hi, y.size - span - 1)
    if hi <= lo:
        return -1, 0.0, 0.0
    taps = np.zeros(span, np.complex64)
    taps[::sps] = ref
    seg = y[lo - 1:hi + span]
    corr = np.abs(np.correlate(seg, taps, mode="valid"))  # corr[j] <-> start lo - 1 + j
    j = int(np.argmax(corr[1:-1])) + 1
    a, b, c = corr[j - 1], corr[j], corr[j + 1]
    denom = a - 2 * b + c
    frac = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
    energy = np.sqrt(np.sum(np.abs(seg[j:j + span:sps]) ** 2) * ref.size)
    return lo - 1 + j, frac, float(b / max(energy, 1e-30))


def fine_cfo(ltf: np.ndarray, samples_per_symbol: int) -> float:
    """Residual CFO (cycles per sample) from the two LTF repetitions at symbol rate, (128,) complex."""
    a, b = ltf[:LTF_LENGTH], ltf[LTF_LENGTH:2 * LTF_LENGTH]
    return float(np.angle(np.sum(b * np.conj(a))) / (2 * np.pi * LTF_LENGTH * samples_per_symbol))
