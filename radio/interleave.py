"""Codeword interleaver of v2 bursts: each LDPC codeword's symbols spread over a group of codewords' airtime.

Under block fading (a gain held for a coherence time, radio/channel.py) a codeword sent in one piece sees one
gain: a deep fade costs it everything. Interleaved, a group of d consecutive data codewords (burst order,
whatever the runs) goes on air column by column: symbol j of codeword i (all its repeats, S symbols) is the
group's air symbol j d + i, so every codeword samples the whole group's span and a fade costs each a little.
d = interleave_symbols // S (at least 1), so the span is about the same airtime at every MCS; the burst's
last group holds the remainder. d = 1 (interleave_symbols 0, or below S) is the plain layout, and so is a
probe burst's (SIG flag): its codewords measure the channel block by block for the selector, which judges a
short sample with a wide spread as fading (radio/link_adaptation.py).

The group is the unit of decoding: the receiver decodes it when its last symbol has arrived (all its
codewords at once), deinterleaves symbols and noise variances, and keys HARQ per codeword as before. The
transmitter encodes one group at a time (memory: one group's symbols, at most interleave_symbols + S).
An interleaved codeword's SNR is its mutual-information effective SNR (`effective_snr_db`): the AWGN SNR
with the same mean BICM capacity as its symbols' SNRs, which is what the AWGN BLER curves need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from radio.capacity_tables import CAPACITY_GRID_DB, capacity_table
from radio.config import DEFAULT_INTERLEAVE_SYMBOLS, MAX_INTERLEAVE_SYMBOLS  # noqa: F401 (re-exported)
from radio.errors import RadioError



def check_interleave_symbols(value: int, key: str = "radio.interleave_symbols") -> int:
    """The setting as an int; RadioError naming the key when it is not in 0..MAX_INTERLEAVE_SYMBOLS."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_INTERLEAVE_SYMBOLS:
        raise RadioError(f"{key} must be an integer in 0..{MAX_INTERLEAVE_SYMBOLS}, got {value!r}")
    return int(value)


def group_codewords(symbols_per_codeword: int, interleave_symbols: int, probe: bool = False) -> int:
    """d: codewords per interleaving group, interleave_symbols // S, at least 1 (1 in a probe burst)."""
    depth = check_interleave_symbols(interleave_symbols) // max(int(symbols_per_codeword), 1)
    return 1 if probe else max(1, depth)


def complete_codewords(arrived_symbols: int, symbols_per_codeword: int, codewords: int, depth: int) -> int:
    """Codewords whose whole group has arrived when the first `arrived_symbols` data symbols have."""
    whole = min(arrived_symbols // symbols_per_codeword, codewords)
    if whole == codewords:
        return codewords
    return whole // depth * depth


def effective_snr_db(snr: np.ndarray, modulation: str) -> np.ndarray:
    """(b, n) linear per-symbol SNRs -> (b,) dB: the AWGN SNR whose BICM capacity is the rows' mean capacity
    (mutual-information effective SNR; equals the SNR where it is constant)."""
    table = capacity_table(modulation)
    snr_db = 10.0 * np.log10(np.maximum(np.asarray(snr, float), 1e-30))
    mean = np.interp(snr_db, CAPACITY_GRID_DB, table).mean(axis=-1)
    return np.interp(mean, table, CAPACITY_GRID_DB)


def _groups(count: int, depth: int) -> list[tuple[int, int]]:
    return [(a, min(a + depth, count)) for a in range(0, count, depth)]


def interleave(x: np.ndarray, depth: int) -> np.ndarray:
    """(count, S, ...) codeword-major symbols of whole groups (the last may be short) -> (count S, ...) air order."""
    if depth <= 1:
        return x.reshape((-1,) + x.shape[2:])
    return np.concatenate([np.swapaxes(x[a:b], 0, 1).reshape((-1,) + x.shape[2:]) for a, b in _groups(len(x), depth)])


def interleaved_groups(pieces: Iterable[np.ndarray], symbols_per_codeword: int, codewords: int,
                       depth: int) -> Iterator[np.ndarray]:
    """Codeword-major symbols (pieces of whole codewords, in burst order) -> one air-order array per group, as
    `interleave` orders them; memory: one group plus one piece (no intermediate copy of the group)."""
    it, pending = iter(pieces), np.zeros((0, symbols_per_codeword), np.complex64)
    for first in range(0, codewords, depth):
        count = min(depth, codewords - first)
        out = np.empty((symbols_per_codeword, count), np.complex64)
        done = 0
        while done < count:
            if not len(pending):
                pending = np.asarray(next(it)).reshape(-1, symbols_per_codeword)
            k = min(len(pending), count - done)
            out[:, done:done + k] = pending[:k].T
            pending, done = pending[k:], done + k
        yield out.reshape(-1)


def deinterleave(air: np.ndarray, count: int, depth: int) -> np.ndarray:
    """(count S, ...) air-order values of whole groups -> (count, S, ...) codeword-major (inverse of interleave)."""
    per = air.shape[0] // max(count, 1)
    if depth <= 1 or count == 0:
        return air.reshape((count, per) + air.shape[1:])
    out = np.empty((count, per) + air.shape[1:], air.dtype)
    for a, b in _groups(count, depth):
        out[a:b] = np.swapaxes(air[a * per: b * per].reshape((per, b - a) + air.shape[1:]), 0, 1)
    return out
