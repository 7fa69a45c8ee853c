"""Fast complex exponentials exp(j (phase0 + step * k)) for k = 0..n-1, without n complex exp calls."""

from __future__ import annotations

import numpy as np


def phasor(phase0: float, step: float, n: int) -> np.ndarray:
    """(n,) complex64 exp(j (phase0 + step k)), built as an outer product of two short tables."""
    if n <= 0:
        return np.zeros(0, np.complex64)
    block = int(np.ceil(np.sqrt(n)))
    inner = np.exp(1j * step * np.arange(block))
    outer = np.exp(1j * (phase0 + step * block * np.arange(-(-n // block))))
    return np.outer(outer, inner).ravel()[:n].astype(np.complex64)
