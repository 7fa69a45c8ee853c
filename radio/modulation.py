"""Gray-mapped BPSK, QPSK, 16-, 64- and 256-QAM with unit average energy, and max-log soft demapping.

Bits map to symbols MSB first; a square M-QAM symbol carries its in-phase bits first, then its
quadrature bits, each dimension a Gray-coded PAM. LLRs follow llr = log P(b=0) / P(b=1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from radio.errors import RadioError


@dataclass(frozen=True)
class Constellation:
    """A Gray-mapped square constellation (BPSK is the one-dimensional case)."""

    name: str
    bits_per_symbol: int
    levels: np.ndarray  # (L,) float32 PAM amplitudes per dimension, scaled for unit symbol energy
    level_bits: np.ndarray  # (L, m) uint8: the Gray bit pattern carried by each level

    @property
    def is_bpsk(self) -> bool:
        return self.bits_per_symbol == 1

    @property
    def points(self) -> np.ndarray:
        """(2**bits_per_symbol,) complex64 points in bit-pattern order."""
        values = np.arange(2**self.bits_per_symbol)
        bits = ((values[:, None] >> np.arange(self.bits_per_symbol - 1, -1, -1)) & 1).astype(np.uint8)
        return map_bits(bits.ravel(), self)


def _gray_pam(bits_per_dim: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Levels 2i-(L-1) scaled, with the Gray code of i as each level's bit pattern."""
    count = 2**bits_per_dim
    index = np.arange(count)
    gray = index ^ (index >> 1)
    # level i carries the bit pattern gray(i); bit 0 on the outermost negative level pattern 00..0
    pattern = ((gray[:, None] >> np.arange(bits_per_dim - 1, -1, -1)) & 1).astype(np.uint8)
    levels = ((2 * index - (count - 1)) * scale).astype(np.float32)
    return levels, pattern


BITS_PER_SYMBOL: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
MODULATIONS: tuple[str, ...] = tuple(BITS_PER_SYMBOL)


@lru_cache(maxsize=None)
def constellation(name: str) -> Constellation:
    """The constellation called `name` (bpsk, qpsk, 16qam, 64qam, 256qam)."""
    if name not in BITS_PER_SYMBOL:
        raise RadioError(f"unknown modulation {name!r}; known: {', '.join(BITS_PER_SYMBOL)}")
    m = BITS_PER_SYMBOL[name]
    if m == 1:
        levels, pattern = np.array([1.0, -1.0], np.float32), np.array([[0], [1]], np.uint8)
        return Constellation(name, 1, levels, pattern)
    per_dim = m // 2
    count = 2**per_dim
    scale = float(np.sqrt(3.0 / (2.0 * (count**2 - 1))))  # unit average energy over both dimensions
    levels, pattern = _gray_pam(per_dim, scale)
    return Constellation(name, m, levels, pattern)


@lru_cache(maxsize=None)
def _pattern_to_level(name: str) -> np.ndarray:
    """Lookup table: the integer value of a dimension's bit pattern -> its level amplitude."""
    c = constellation(name)
    m = c.level_bits.shape[1]
    values = (c.level_bits.astype(np.int64) << np.arange(m - 1, -1, -1)).sum(axis=1)
    table = np.empty(len(values), np.float32)
    table[values] = c.levels
    return table


def map_bits(bits: np.ndarray, c: Constellation) -> np.ndarray:
    """(n * bits_per_symbol,) uint8 bits -> (n,) complex64 symbols."""
    bits = np.asarray(bits, np.uint8)
    m = c.bits_per_symbol
    if bits.size % m:
        raise RadioError(f"{bits.size} bits do not fill whole {c.name} symbols of {m} bits")
    groups = bits.reshape(-1, m).astype(np.int64)
    if m == 1:
        return (1.0 - 2.0 * groups[:, 0]).astype(np.complex64)
    half = m // 2
    weights = 1 << np.arange(half - 1, -1, -1)
    table = _pattern_to_level(c.name)
    i = table[groups[:, :half] @ weights]
    q = table[groups[:, half:] @ weights]
    return (i + 1j * q).astype(np.complex64)


@numba.njit(cache=True, fastmath=True)
def _pam_llr_kernel(y: np.ndarray, inv_var: np.ndarray, levels: np.ndarray, bits: np.ndarray,
                    out: np.ndarray, column: int, stride: int) -> None:
    """Max-log LLRs of one PAM dimension written to out[k * stride + column + j] for bit j."""
    n_levels, m = bits.shape
    min0 = np.empty(m, np.float32)
    min1 = np.empty(m, np.float32)
    for k in range(y.size):
        for j in range(m):
            min0[j] = np.inf
            min1[j] = np.inf
        for i in range(n_levels):
            d = y[k] - levels[i]
            d2 = d * d
            for j in range(m):
                if bits[i, j]:
                    if d2 < min1[j]:
                        min1[j] = d2
                elif d2 < min0[j]:
                    min0[j] = d2
        for j in range(m):
            out[k * stride + column + j] = (min1[j] - min0[j]) * inv_var[k]


def demap_llr(symbols: np.ndarray, noise_var: np.ndarray | float, c: Constellation) -> np.ndarray:
    """(n,) equalized complex symbols, noise variance per symbol -> (n * m,) float32 max-log LLRs."""
    z = np.asarray(symbols, np.complex64)
    inv_var = (1.0 / np.broadcast_to(np.asarray(noise_var, np.float32), z.shape)).astype(np.float32)
    if c.is_bpsk:
        return (4.0 * z.real * inv_var).astype(np.float32)
    if c.bits_per_symbol == 2:  # QPSK: one bit per dimension, the LLR is linear
        gain = np.float32(4.0 * c.levels[0]) * inv_var  # levels[0] < 0 carries bit 0
        out = np.empty((z.size, 2), np.float32)
        out[:, 0] = gain * z.real
        out[:, 1] = gain * z.imag
        return out.ravel()
    m = c.bits_per_symbol
    out = np.empty(z.size * m, np.float32)
    _pam_llr_kernel(np.ascontiguousarray(z.real), inv_var, c.levels, c.level_bits, out, 0, m)
    _pam_llr_kernel(np.ascontiguousarray(z.imag), inv_var, c.levels, c.level_bits, out, m // 2, m)
    return out


def hard_bits(symbols: np.ndarray, c: Constellation) -> np.ndarray:
    """Nearest-point bit decisions: (n,) complex -> (n * m,) uint8."""
    return (demap_llr(symbols, 1.0, c) < 0).astype(np.uint8)
