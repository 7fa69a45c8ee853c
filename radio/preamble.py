"""Known symbol sequences: the short training field (STF), long training field (LTF) and pilots.

STF: an 8-symbol constant-modulus sequence repeated 16 times, for detection and coarse CFO (its period of
8 symbols gives an unambiguous CFO range of +-sample_rate / (16 * sps)). LTF: a 64-symbol BPSK
pseudo-noise sequence sent twice, for timing, fine CFO, channel and SNR estimation. LTF2: the same structure
from another pseudo-noise seed, the v2 burst's LTF (radio/burst.py): which LTF correlates tells the frame version.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

STF_PERIOD = 8
STF_REPEATS = 16
LTF_LENGTH = 64
LTF_REPEATS = 2
PILOT_SPACING = 32  # data symbols between two pilots
LTF_SEED = 0xA1F
LTF2_SEED = 0xA2F


def _pn(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, length)


@lru_cache(maxsize=None)
def stf_symbols() -> np.ndarray:
    """(STF_PERIOD * STF_REPEATS,) complex64: a Zadoff-Chu-like period repeated."""
    n = np.arange(STF_PERIOD)
    period = np.exp(-1j * np.pi * 3 * n * n / STF_PERIOD)  # constant modulus, flat periodic spectrum
    return np.tile(period, STF_REPEATS).astype(np.complex64)


@lru_cache(maxsize=None)
def ltf_period() -> np.ndarray:
    """(LTF_LENGTH,) complex64 BPSK pseudo-noise symbols."""
    return (1.0 - 2.0 * _pn(LTF_LENGTH, LTF_SEED)).astype(np.complex64)


@lru_cache(maxsize=None)
def ltf_symbols() -> np.ndarray:
    """(LTF_LENGTH * LTF_REPEATS,) complex64."""
    return np.tile(ltf_period(), LTF_REPEATS).astype(np.complex64)


@lru_cache(maxsize=None)
def ltf2_period() -> np.ndarray:
    """(LTF_LENGTH,) complex64 BPSK pseudo-noise symbols of the v2 LTF (seed LTF2_SEED)."""
    return (1.0 - 2.0 * _pn(LTF_LENGTH, LTF2_SEED)).astype(np.complex64)


@lru_cache(maxsize=None)
def ltf2_symbols() -> np.ndarray:
    """(LTF_LENGTH * LTF_REPEATS,) complex64: the v2 LTF, its period sent twice like the v1 LTF."""
    return np.tile(ltf2_period(), LTF_REPEATS).astype(np.complex64)


@lru_cache(maxsize=None)
def preamble_symbols() -> np.ndarray:
    """STF then LTF."""
    return np.concatenate([stf_symbols(), ltf_symbols()])


@lru_cache(maxsize=64)
def pilot_symbols(count: int) -> np.ndarray:
    """(count,) complex64 BPSK pilots from a fixed pseudo-noise sequence."""
    return (1.0 - 2.0 * _pn(count, 0x9107)).astype(np.complex64)


@lru_cache(maxsize=256)
def layout(n_data: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Place n_data symbols on the pilot grid: a pilot, PILOT_SPACING data symbols, a pilot, ..., a pilot.

    Returns (total symbols, data positions, pilot positions), positions counted after the LTF.
    """
    n_pilots = -(-n_data // PILOT_SPACING) + 1 if n_data else 1
    total = n_data + n_pilots
    pilot_pos = np.arange(n_pilots) * (PILOT_SPACING + 1)
    pilot_pos[-1] = total - 1
    is_pilot = np.zeros(total, bool)
    is_pilot[pilot_pos] = True
    data_pos = np.flatnonzero(~is_pilot)
    return total, data_pos, pilot_pos
