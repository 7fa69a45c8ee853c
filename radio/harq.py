"""HARQ chase combining: the LLRs of codewords that failed, kept (int8) until a retransmission arrives.

A codeword is addressed by `(session, offset, code_name)` (design section 2: a codeword *is*
payload[offset : offset + L] at one code). The receiver's flow per codeword:

    llr_sum = store.combine(key, llr)      # llr + stored, or llr when nothing is stored
    result = codeword.decode(code, llr_sum)
    if ok: store.drop(key)  else: store.store(key, llr)   # store *adds* llr to what is held

`store` accumulates, so pass it the new transmission's channel LLRs, not `combine`'s output. LLRs are
held quantized: step `LLR_STEP_Q` = 0.25, saturating at +-127 steps (+-31.75), one byte per coded bit
(1944 B per n = 1944 codeword). One entry per (session, offset): storing under another code drops the old
entry (the sender re-cut the range at a new MCS). Total size is bounded by `max_bytes`; the oldest entries
(by last store) are evicted first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from radio.errors import FecError

LLR_STEP_Q = 0.25  # LLR units per int8 step
LLR_MAX_Q = 127  # saturation, in steps: +-31.75 LLR units
MAX_CODEWORD_BITS = 1 << 16  # an entry larger than this is refused (n is 648..1944)

HarqKey = tuple[int, int, str]  # (session, payload byte offset, code name such as 'ldpc1944-1/2')


def quantize(llr: np.ndarray) -> np.ndarray:
    """float LLRs -> int8 steps of LLR_STEP_Q, saturating at +-LLR_MAX_Q (NaN -> 0)."""
    x = np.nan_to_num(np.asarray(llr, np.float32), nan=0.0, posinf=1e9, neginf=-1e9)
    return np.clip(np.rint(x / LLR_STEP_Q), -LLR_MAX_Q, LLR_MAX_Q).astype(np.int8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """int8 steps -> float32 LLRs."""
    return q.astype(np.float32) * np.float32(LLR_STEP_Q)


@dataclass(frozen=True)
class HarqStats:
    """entries and bytes held now; stored / combined / dropped / evictions / code_changes counted since start."""

    entries: int
    bytes: int
    stored: int
    combined: int
    dropped: int
    evictions: int
    code_changes: int


class LlrStore:
    """Bounded int8 store of failed codewords' LLRs, keyed by (session, offset, code_name)."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise FecError(f"HARQ max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], tuple[str, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._stored = self._combined = self._dropped = self._evictions = self._code_changes = 0

    @staticmethod
    def _llr(llr: np.ndarray) -> np.ndarray:
        x = np.asarray(llr, np.float32)
        if x.ndim != 1 or not 0 < x.size <= MAX_CODEWORD_BITS:
            raise FecError(f"HARQ LLRs must be one codeword, shape (n,) with n <= {MAX_CODEWORD_BITS}, got {x.shape}")
        return x

    def combine(self, key: HarqKey, llr: np.ndarray) -> np.ndarray:
        """(n,) float32: llr plus the stored LLRs of `key`, or llr itself (as float32) when none are held.

        The store is not changed. A stored entry of another length under the same key is an error.
        """
        session, offset, code_name = key
        x = self._llr(llr)
        entry = self._entries.get((session, offset))
        if entry is None or entry[0] != code_name:
            return x
        if entry[1].size != x.size:
            raise FecError(f"HARQ LLRs for {key} have {x.size} bits, the stored entry {entry[1].size}")
        self._combined += 1
        return x + dequantize(entry[1])

    def store(self, key: HarqKey, llr: np.ndarray) -> None:
        """Add llr (one transmission's channel LLRs) to what `key` holds, quantized; evict the oldest when full."""
        session, offset, code_name = key
        x = self._llr(llr)
        if x.size > self.max_bytes:
            self.drop(key)
            return  # can never fit: not held
        entry = self._entries.pop((session, offset), None)
        if entry is not None:
            self._bytes -= entry[1].size
            if entry[0] != code_name or entry[1].size != x.size:
                self._code_changes += 1
                entry = None
        total = x if entry is None else x + dequantize(entry[1])
        q = quantize(total)
        while self._entries and self._bytes + q.size > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self._bytes -= old.size
            self._evictions += 1
        self._entries[(session, offset)] = (code_name, q)
        self._bytes += q.size
        self._stored += 1

    def drop(self, key: HarqKey) -> bool:
        """Forget `key` (its codeword decoded); True when something was held under that exact code."""
        session, offset, code_name = key
        entry = self._entries.get((session, offset))
        if entry is None or entry[0] != code_name:
            return False
        del self._entries[(session, offset)]
        self._bytes -= entry[1].size
        self._dropped += 1
        return True

    def drop_session(self, session: int) -> int:
        """Forget every entry of `session` (it ended); returns how many."""
        keys = [k for k in self._entries if k[0] == session]
        for k in keys:
            self._bytes -= self._entries.pop(k)[1].size
        self._dropped += len(keys)
        return len(keys)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 3:
            return False
        entry = self._entries.get((key[0], key[1]))
        return entry is not None and entry[0] == key[2]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Bytes of LLRs held (one per coded bit)."""
        return self._bytes

    @property
    def stats(self) -> HarqStats:
        return HarqStats(len(self._entries), self._bytes, self._stored, self._combined, self._dropped,
                         self._evictions, self._code_changes)
