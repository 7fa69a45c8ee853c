"""Root-raised-cosine pulse shaping and matched filtering."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from radio.fir import oaconvolve


@lru_cache(maxsize=None)
def rrc_taps(samples_per_symbol: int, rolloff: float, span_symbols: int = 12) -> np.ndarray:
    """(2 * span_symbols * sps + 1,) float32 RRC taps with unit energy, centred on the middle tap."""
    sps, beta = samples_per_symbol, rolloff
    t = np.arange(-span_symbols * sps, span_symbols * sps + 1, dtype=np.float64) / sps
    taps = np.empty_like(t)
    for k, tk in enumerate(t):
        if abs(tk) < 1e-12:
            taps[k] = 1.0 - beta + 4.0 * beta / np.pi
        elif beta > 0 and abs(abs(4.0 * beta * tk) - 1.0) < 1e-9:
            taps[k] = (beta / np.sqrt(2.0)) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta))
                                               + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
        else:
            num = np.sin(np.pi * tk * (1 - beta)) + 4 * beta * tk * np.cos(np.pi * tk * (1 + beta))
            taps[k] = num / (np.pi * tk * (1 - (4 * beta * tk) ** 2))
    taps /= np.sqrt(np.sum(taps**2))
    return taps.astype(np.float32)


def shape(symbols: np.ndarray, samples_per_symbol: int, rolloff: float) -> np.ndarray:
    """(n,) complex symbols -> (n * sps + len(taps) - 1,) complex64 shaped samples (filter tails kept)."""
    sps = samples_per_symbol
    up = np.zeros(len(symbols) * sps, np.complex64)
    up[::sps] = symbols
    return oaconvolve(up, rrc_taps(sps, rolloff)).astype(np.complex64)


def matched_filter(samples: np.ndarray, samples_per_symbol: int, rolloff: float) -> np.ndarray:
    """(n,) complex samples -> (n,) complex64 matched-filter output aligned with the input ('same')."""
    return oaconvolve(samples, rrc_taps(samples_per_symbol, rolloff), mode="same").astype(np.complex64)


def filter_delay(samples_per_symbol: int, rolloff: float) -> int:
    """Group delay in samples of one RRC filter."""
    return (len(rrc_taps(samples_per_symbol, rolloff)) - 1) // 2
