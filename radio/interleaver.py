"""Bit interleaver: a fixed pseudo-random permutation that depends only on the block length."""

from __future__ import annotations

import functools

import numpy as np

from radio.errors import FecError


@functools.lru_cache(maxsize=64)
def _permutation(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(perm, inverse) for this length, int64 (length,), read-only; seeded by the length."""
    perm = np.random.default_rng(length).permutation(length)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(length)
    perm.flags.writeable = False
    inv.flags.writeable = False
    return perm, inv


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise FecError(f"interleaver input must be 1-D, got shape {x.shape}")
    return x


def interleave(bits: np.ndarray) -> np.ndarray:
    """out[i] = bits[perm[i]]. Any dtype, shape (n,) -> same dtype, shape (n,)."""
    bits = _check(bits)
    return bits[_permutation(bits.size)[0]]


def deinterleave(values: np.ndarray) -> np.ndarray:
    """Exact inverse of interleave (bits or float LLRs). Shape (n,) -> same dtype, shape (n,)."""
    values = _check(values)
    return values[_permutation(values.size)[1]]
