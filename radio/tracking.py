"""Channel tracking with pilots: complex gain (phase and amplitude) interpolated over a packet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from radio.preamble import PILOT_SPACING


def smoothing_window(snr_linear: float) -> int:
    """Odd number of pilots averaged per estimate: 31 at low SNR, down to 15 at high SNR.

    Each estimate adds about 1/w of the noise to the equalized symbols (0.28 dB at w = 15).
    """
    w = int(np.clip(150.0 / max(snr_linear, 1e-3), 15, 31))
    return w if w % 2 else w + 1


def residual_frequency(positions: np.ndarray, gains: np.ndarray) -> float:
    """Maximum-likelihood residual frequency (radians per symbol) of pilot gains at symbol positions.

    The periodogram sum_k g_k exp(-j w p_k) is evaluated with one zero-padded FFT and its peak is
    searched within the unambiguous range |w| < pi / pilot spacing, then refined by a parabola.
    """
    if gains.size < 3:
        return 0.0
    p = positions - positions[0]
    nfft = 1 << int(np.ceil(np.log2(max(2 * (p[-1] + 1), 64))))
    sparse = np.zeros(nfft, np.complex64)
    np.add.at(sparse, p, gains)
    spectrum = np.abs(sfft.fft(sparse))  # bin k <-> w = 2 pi k / nfft
    limit = int(0.9 * nfft / (2 * (PILOT_SPACING + 1)))
    k = np.arange(-limit, limit + 1)
    mag = spectrum[k % nfft]
    i = int(np.argmax(mag))
    shift = 0.0
    if 0 < i < mag.size - 1:
        a, b, c = mag[i - 1], mag[i], mag[i + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return float(2 * np.pi * (k[i] + shift) / nfft)


@dataclass(frozen=True)
class Tracked:
    """Gains interpolated at the data symbols and smoothed at the pilots, with each pilot's own weight."""

    at_data: np.ndarray  # (d,) complex64
    at_pilots: np.ndarray  # (p,) complex64
    self_weight: np.ndarray  # (p,) float: share of a pilot's own noise in its smoothed estimate


def track_gains(pilot_pos: np.ndarray, pilot_rx: np.ndarray, pilot_tx: np.ndarray, data_pos: np.ndarray,
                window: int) -> Tracked:
    """Complex channel gains over a packet from its pilots.

    pilot_pos (p,) increasing symbol indices; pilot_rx, pilot_tx (p,) complex; data_pos (d,) indices.
    A residual frequency is removed first, then gains are averaged over `window` neighbouring pilots and
    interpolated linearly in between (the frequency is put back afterwards).
    """
    g = (pilot_rx / pilot_tx).astype(np.complex128)
    pos = pilot_pos.astype(np.int64)
    omega = residual_frequency(pos, g)
    rot = np.exp(-1j * omega * pos)
    flat = g * rot
    half = window // 2
    idx = np.arange(g.size)
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, g.size)
    c = np.concatenate([[0], np.cumsum(flat)])
    flat = (c[hi] - c[lo]) / (hi - lo)
    re = np.interp(data_pos, pos, flat.real)
    im = np.interp(data_pos, pos, flat.imag)
    at_data = (re + 1j * im) * np.exp(1j * omega * data_pos)
    return Tracked(at_data.astype(np.complex64), (flat / rot).astype(np.complex64), 1.0 / (hi - lo))
