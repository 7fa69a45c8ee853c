"""Timing drift (sample clock offset) inside one v1 packet, from the spectral line of the matched filter's power.

The matched-filter output y at sps samples per symbol has symbol k near sample first + k sps (1 + d), with d
the relative drift (d > 0: the symbols lie further apart than nominal). |y|^2 carries a spectral line at the
symbol rate whose phase is the timing (Oerder & Meyr): per segment s of L symbols,

    X_s = sum_n |y[first + n]|^2 exp(-j 2 pi n / sps)    (n over the segment's L sps samples, centred on them)

is about A exp(-j 2 pi tau_s / sps) with tau_s the segment's timing offset in samples. A drift makes tau_s a
line in s, so X_s is a tone of angular frequency -2 pi d L per segment: its periodogram peak (zero-padded FFT,
parabolic refinement) gives d without unwrapping, at any SNR where the packet decodes. Non-data-aided, so
every symbol counts (not only the pilots), and blind to carrier phase and CFO (it uses |y|^2).

Trust: the residuals across the fitted tone (those that move its phase; the data's self-noise lies mostly
along it) give the line-to-noise ratio and with it the estimate's standard deviation (Cramer-Rao; measured
within 20 % of the spread at 0 dB, conservative at high SNR), so a caller can ignore an estimate that noise
alone explains (`Drift.significant`). A periodogram peak with less energy than LINE_MIN times the residual
per segment is no line at all (noise's highest peak in the search range reaches ~ln of its independent
bins, 3 to 7 here): its deviation is infinite. It needs sps >= 3 (at sps 2 the line sits at fs / 2 and has no phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy import fft as sfft

SEGMENT_SYMBOLS = 64  # symbols per spectral-line segment
MAX_DRIFT = 3.0e-4  # |d| searched (300 ppm; the configuration allows 200)
MIN_SEGMENTS = 8  # fewer segments than this: no estimate (a short packet barely drifts)
PAD = 16  # periodogram zero-padding factor
SIGMAS = 3.0  # an estimate closer to zero than this many standard deviations is not significant
LINE_MIN = 16.0  # the line's energy over the packet against the noise per segment below which no line is seen


@dataclass(frozen=True)
class Drift:
    """A packet's timing drift estimate."""

    drift: float  # relative: samples per symbol = sps (1 + drift)
    std: float  # its standard deviation (Cramer-Rao bound at the measured line-to-noise ratio; inf: none)
    segments: int  # spectral-line segments behind the estimate (0: none made)

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6

    @property
    def significant(self) -> bool:
        """The drift is SIGMAS standard deviations or more from zero."""
        return abs(self.drift) >= SIGMAS * self.std


NO_DRIFT = Drift(0.0, float("inf"), 0)


@numba.njit(cache=True)
def _line_kernel(y: np.ndarray, start: int, n_seg: int, symbols: int, phase: np.ndarray, out: np.ndarray) -> None:
    sps = phase.size
    acc = np.zeros(sps)
    for s in range(n_seg):
        acc[:] = 0.0
        base = start + s * symbols * sps
        if base >= 0 and base + symbols * sps <= y.size:
            for m in range(symbols):
                i = base + m * sps
                for j in range(sps):
                    v = y[i + j]
                    acc[j] += v.real * v.real + v.imag * v.imag
        else:  # a segment over y's edge: samples outside count as zero
            for i in range(max(base, 0), min(base + symbols * sps, y.size)):
                v = y[i]
                acc[(i - base) % sps] += v.real * v.real + v.imag * v.imag
        total = 0j
        for j in range(sps):
            total += acc[j] * phase[j]
        out[s] = total


def spectral_line(y: np.ndarray, first: int, n_symbols: int, sps: int,
                  segment_symbols: int = SEGMENT_SYMBOLS) -> np.ndarray:
    """(n_seg,) complex128 X_s over whole segments of n_symbols symbols from sample `first` of y (n,) complex.

    Segment s covers samples first + s L sps - sps // 2 .. + L sps; samples outside y count as zero.
    """
    n_seg = max(n_symbols // segment_symbols, 0)
    out = np.zeros(n_seg, np.complex128)
    phase = np.exp(-2j * np.pi * (np.arange(sps) - sps // 2) / sps)
    _line_kernel(np.ascontiguousarray(y, np.complex64), first - sps // 2, n_seg, segment_symbols, phase, out)
    return out


def line_frequency(x: np.ndarray, max_rad: float, pad: int = PAD) -> float | None:
    """Angular frequency (radians per sample, |w| <= max_rad) of a complex tone x (n,): periodogram peak,
    refined by a parabola through the peak and its neighbours; None when the peak lies on the search
    range's edge (no tone inside it)."""
    nfft = sfft.next_fast_len(pad * x.size)
    spectrum = np.abs(sfft.fft(x, nfft))
    limit = min(int(np.ceil(max_rad * nfft / (2 * np.pi))), nfft // 2 - 1)
    k = np.arange(-limit, limit + 1)
    mag = spectrum[k % nfft]
    i = int(np.argmax(mag))
    if i == 0 or i == mag.size - 1:
        return None
    a, b, c = mag[i - 1], mag[i], mag[i + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return float(2 * np.pi * (k[i] + shift) / nfft)


def estimate_drift(y: np.ndarray, first: int, n_symbols: int, sps: int,
                   segment_symbols: int = SEGMENT_SYMBOLS) -> Drift:
    """Timing drift of n_symbols symbols of matched-filter output y (n,) complex, symbol 0 at sample `first`.

    Returns NO_DRIFT for sps < 3, fewer than MIN_SEGMENTS segments or no line within +-MAX_DRIFT.
    """
    if sps < 3 or n_symbols // segment_symbols < MIN_SEGMENTS:
        return NO_DRIFT
    x = spectral_line(y, first, n_symbols, sps, segment_symbols)
    w = line_frequency(x, 2 * np.pi * MAX_DRIFT * segment_symbols)
    if w is None:
        return NO_DRIFT
    n = x.size
    tone = np.exp(1j * w * np.arange(n))
    line = np.vdot(tone, x) / n * tone  # the fitted tone
    power = float(np.abs(line[0]) ** 2)
    drift = -w / (2 * np.pi * segment_symbols)
    if n * power < LINE_MIN * float(np.sum(np.abs(x - line) ** 2)) / (n - 2):
        return Drift(drift, float("inf"), n)  # the peak is no stronger than noise's highest
    # only the residual across the line moves its phase (data self-noise is mostly along it)
    across = (x * np.conj(line)).imag / max(np.sqrt(power), 1e-300)
    snr = power / max(2.0 * float(np.sum(across ** 2)) / (n - 2), 1e-300)
    w_std = np.sqrt(6.0 / (snr * n * (n * n - 1.0)))  # CRLB of a tone's frequency
    return Drift(drift, float(w_std / (2 * np.pi * segment_symbols)), n)


def drift_positions(first: float, n_symbols: int, sps: int, drift: float, ref_symbol: float) -> np.ndarray:
    """(n_symbols,) float64 sample positions first + k sps + drift sps (k - ref_symbol): the timing holds at
    ref_symbol (where it was measured) and slips linearly from there."""
    k = np.arange(n_symbols, dtype=np.float64)
    return first + k * sps + drift * sps * (k - ref_symbol)
