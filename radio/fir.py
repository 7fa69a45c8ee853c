"""FIR filtering without scipy.signal: overlap-add FFT convolution and a windowed-sinc low-pass design.

scipy.signal pulls in scipy.stats and scipy.optimize on import: about 54 MB of resident memory in every host
and edge process (issue 16's memory budget) for two functions. These two are tested against scipy.signal's
`oaconvolve` and `firwin` (tests/radio/test_fir.py).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def _block_len(n_taps: int) -> tuple[int, int]:
    """(block length L, FFT size) for overlap-add with n_taps taps: FFT size ~ 8 x taps, L = nfft - taps + 1."""
    nfft = sfft.next_fast_len(max(8 * n_taps, 64))
    return nfft - n_taps + 1, nfft


def oaconvolve(x: np.ndarray, h: np.ndarray, mode: str = "full") -> np.ndarray:
    """Linear convolution of a 1-D signal x with 1-D taps h by overlap-add ('full' or 'same', as numpy/scipy).

    Computed in x's precision (complex64 in, complex64 out). Short inputs take one FFT.
    """
    x, h = np.asarray(x), np.asarray(h)
    if x.ndim != 1 or h.ndim != 1:
        raise ValueError("oaconvolve: x and h must be 1-D")
    if mode not in ("full", "same"):
        raise ValueError(f"oaconvolve: mode {mode!r} is not 'full' or 'same'")
    n, m = x.size, h.size
    if n == 0 or m == 0:
        return np.zeros(0, np.result_type(x, h))
    dtype = np.result_type(x, h, np.float32)
    complex_out = np.iscomplexobj(x) or np.iscomplexobj(h)
    full = n + m - 1
    block, nfft = _block_len(m)
    if n <= block:  # one transform
        nfft = sfft.next_fast_len(full)
        fx = sfft.fft(x.astype(dtype, copy=False), nfft) if complex_out else sfft.rfft(x.astype(dtype, copy=False), nfft)
        fh = sfft.fft(h.astype(dtype, copy=False), nfft) if complex_out else sfft.rfft(h.astype(dtype, copy=False), nfft)
        y = sfft.ifft(fx * fh)[:full] if complex_out else sfft.irfft(fx * fh, nfft)[:full]
    else:
        blocks = -(-n // block)
        padded = np.zeros(blocks * block, dtype)
        padded[:n] = x
        rows = padded.reshape(blocks, block)
        if complex_out:
            fy = sfft.fft(rows, nfft, axis=1) * sfft.fft(h.astype(dtype, copy=False), nfft)
            yb = sfft.ifft(fy, axis=1)
        else:
            fy = sfft.rfft(rows, nfft, axis=1) * sfft.rfft(h.astype(dtype, copy=False), nfft)
            yb = sfft.irfft(fy, nfft, axis=1)
        tail = nfft - block  # = m - 1 samples each block spills into the next
        y = np.zeros((blocks + 1) * block, yb.dtype)
        y[: blocks * block] = yb[:, :block].reshape(-1)
        spill = np.zeros((blocks, block), yb.dtype)
        spill[:, :tail] = yb[:, block:]
        y[block:] += spill.reshape(-1)
        y = y[:full]
    if mode == "same":
        start = (m - 1) // 2
        y = y[start: start + n]
    return y


def firwin(numtaps: int, cutoff_hz: float, fs: float) -> np.ndarray:
    """(numtaps,) float64 linear-phase low-pass: Hamming-windowed sinc scaled to unit gain at DC (scipy's
    `firwin(numtaps, cutoff, fs=fs)` with its defaults)."""
    if numtaps < 1:
        raise ValueError("firwin: numtaps must be at least 1")
    nyq = fs / 2.0
    if not 0.0 < cutoff_hz < nyq:
        raise ValueError(f"firwin: cutoff {cutoff_hz:g} Hz must be between 0 and fs/2 = {nyq:g} Hz")
    c = cutoff_hz / nyq
    k = np.arange(numtaps) - (numtaps - 1) / 2.0
    h = c * np.sinc(c * k) * np.hamming(numtaps)
    return h / np.sum(h)
