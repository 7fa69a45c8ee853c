"""The v2 burst modulator, streaming: a plan and a payload in, IQ chunks out, in bounded memory.

`burst_chunks` encodes the plan's codewords BATCH_CODEWORDS at a time (radio/codeword.py), maps them, lays
them on the burst grid with the pilots (radio/burst.py), and shapes the symbols with a polyphase RRC whose
state (the last taps_per_phase - 1 symbols) carries from chunk to chunk. The filter is a numba loop with a
fixed summation order per output sample (float64 accumulation, no fastmath), so the concatenated chunks
equal `burst_waveform`'s one-shot output bit for bit, whatever the chunk size. Scaling as the v1
transmitter: unit-energy symbols x TX_RMS x sqrt(sps) through unit-energy RRC taps (mean power TX_POWER).
Memory: one chunk of samples plus one batch of codewords, whatever the burst length.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numba
import numpy as np

from radio import airtime, codeword
from radio.burst import (FLAG_LAST, FLAG_PROBE, KNOWN_FLAGS, MAP_BYTES_PER_CODEWORD, MAP_CODE_N, MAP_CODE_RATE,
                         MAX_CODEWORDS, MAX_MAP_CODEWORDS, MAX_PAYLOAD_BYTES, PREAMBLE_SYMBOLS, BurstLayout,
                         CodewordRun, SigHeader, codeword_bytes, codeword_symbols, encode_runs, map_codewords_for,
                         preamble_symbols, run_offsets, sig_symbols)
from radio.errors import RadioError
from radio.interleave import DEFAULT_INTERLEAVE_SYMBOLS, group_codewords, interleaved_groups
from radio.ldpc import code as ldpc_code
from radio.mcs import Mcs
from radio.modulation import constellation, map_bits
from radio.pulse import rrc_taps
from radio.transmitter import TX_RMS

if TYPE_CHECKING:
    from radio.link import LinkSettings

__all__ = ["BATCH_CODEWORDS", "BufferSource", "BurstPlan", "CodewordRun", "FLAG_LAST", "FLAG_PROBE",
           "PayloadSource", "as_source", "burst_chunks", "burst_symbols_array", "burst_waveform"]

BATCH_CODEWORDS = 64  # at most this many codewords are encoded and mapped at a time ...
BATCH_SYMBOLS = 1 << 15  # ... and at most this many symbols' worth (at least one codeword)
DEFAULT_CHUNK_SAMPLES = 1 << 16


@runtime_checkable
class PayloadSource(Protocol):
    """Random-access payload bytes: `size`, and `read(offset, length)` (shorter only at the end)."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


class BufferSource:
    """A PayloadSource over bytes, bytearray, memoryview, mmap or a 1-D uint8 array (reads copy one batch)."""

    def __init__(self, buffer: bytes | bytearray | memoryview | mmap.mmap | np.ndarray) -> None:
        if isinstance(buffer, np.ndarray) and (buffer.dtype != np.uint8 or buffer.ndim != 1):
            raise RadioError(f"a payload array must be 1-D uint8, got {buffer.dtype} {buffer.shape}")
        if isinstance(buffer, memoryview) and (buffer.ndim != 1 or buffer.itemsize != 1):
            buffer = buffer.cast("B")
        self._buffer = buffer

    @property
    def size(self) -> int:
        """Payload bytes."""
        return len(self._buffer)

    def read(self, offset: int, length: int) -> bytes:
        """payload[offset : offset + length]."""
        return bytes(self._buffer[offset: offset + length])


def as_source(payload: PayloadSource | bytes | bytearray | memoryview | mmap.mmap | np.ndarray) -> PayloadSource:
    """The payload as a PayloadSource: buffers are wrapped, a source is returned as is."""
    if isinstance(payload, (bytes, bytearray, memoryview, mmap.mmap, np.ndarray)):
        return BufferSource(payload)
    if isinstance(payload, PayloadSource):
        return payload
    raise RadioError(f"a payload must be bytes-like or have size and read(offset, length), got {type(payload)}")


@dataclass(frozen=True)
class BurstPlan:
    """What one v2 burst carries: codeword runs of one payload at one LDPC MCS (flags: burst.FLAG_*)."""

    session: int
    burst: int
    mcs: Mcs
    runs: tuple[CodewordRun, ...]
    payload_bytes: int
    flags: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(CodewordRun(int(r.offset), int(r.count)) for r in self.runs))
        if self.mcs.family != "ldpc":
            raise RadioError(f"MCS {self.mcs.name} is not an LDPC MCS")
        if not self.runs:
            raise RadioError("a burst plan needs at least one run")
        if not 1 <= self.payload_bytes <= MAX_PAYLOAD_BYTES:
            raise RadioError(f"payload_bytes must be in 1..{MAX_PAYLOAD_BYTES}, got {self.payload_bytes}")
        if not 0 <= self.session < 1 << 32 or not 0 <= self.burst < 1 << 32 or self.flags & ~KNOWN_FLAGS:
            raise RadioError(f"session and burst must be u32 and flags within {KNOWN_FLAGS:#x}, got "
                             f"{self.session}, {self.burst}, {self.flags:#x}")
        size = codeword_bytes(self.mcs)
        for run in self.runs:
            if run.count < 1 or run.offset < 0 or run.offset + (run.count - 1) * size >= self.payload_bytes:
                raise RadioError(f"run {run} does not start every codeword inside the payload of "
                                 f"{self.payload_bytes} bytes at {size} bytes per codeword")
        if self.codewords > MAX_CODEWORDS or self.map_codewords > MAX_MAP_CODEWORDS:
            raise RadioError(f"a burst carries at most {MAX_CODEWORDS} codewords and {MAX_MAP_CODEWORDS} MAP "
                             f"codewords, this plan {self.codewords} and {self.map_codewords}")

    @cached_property
    def codewords(self) -> int:
        """Data codewords (each sent mcs.repeat times)."""
        return sum(r.count for r in self.runs)

    @cached_property
    def map_bytes(self) -> bytes:
        """The runs as MAP varints (empty for a single run)."""
        return encode_runs(self.runs, codeword_bytes(self.mcs)) if len(self.runs) > 1 else b""

    @cached_property
    def map_codewords(self) -> int:
        """MAP codewords: 0 for a single run."""
        return map_codewords_for(self.runs, codeword_bytes(self.mcs))

    @property
    def sig(self) -> SigHeader:
        """The burst's SIG header."""
        return SigHeader(self.mcs.index, self.flags, self.map_codewords, self.codewords, self.session, self.burst,
                         self.runs[0].offset, self.payload_bytes)

    @cached_property
    def layout(self) -> BurstLayout:
        """Where every symbol sits."""
        return BurstLayout(self.mcs, self.codewords, self.map_codewords)

    def offsets(self) -> np.ndarray:
        """(codewords,) int64 payload byte offset of each data codeword, in burst order."""
        return run_offsets(self.runs, codeword_bytes(self.mcs))

    def samples(self, settings: LinkSettings) -> int:
        """Samples burst_chunks emits for this plan (exact, from the airtime closed form)."""
        return airtime.burst_samples_v2(settings, self.mcs, self.codewords, self.map_codewords)


# ----- symbols -----

def _codeword_symbols(code_n: int, rate: str, data: bytes, count: int, modulation: str, repeat: int) -> np.ndarray:
    """(count x repeat x n / m,) complex64: `count` codewords of `data` (zero-padded), mapped, each repeated."""
    bits = codeword.encode(ldpc_code(code_n, rate), data, 0, count)
    symbols = map_bits(bits.reshape(-1), constellation(modulation))
    if repeat > 1:
        symbols = np.repeat(symbols.reshape(count, -1), repeat, axis=0).reshape(-1)
    return symbols


def batch_codewords(symbols_per_codeword: int) -> int:
    """Codewords encoded at a time: BATCH_SYMBOLS worth, 1..BATCH_CODEWORDS."""
    return max(1, min(BATCH_CODEWORDS, BATCH_SYMBOLS // symbols_per_codeword))


def _content(plan: BurstPlan, source: PayloadSource, interleave_symbols: int) -> Iterator[np.ndarray]:
    """The burst's content symbols in order (SIG, MAP, data), a batch of codewords (or an interleaving group,
    radio/interleave.py) at a time."""
    yield sig_symbols(plan.sig)
    scheme = plan.layout.map_scheme
    raw = plan.map_bytes
    batch = batch_codewords(scheme.symbols)
    for first in range(0, plan.map_codewords, batch):
        count = min(batch, plan.map_codewords - first)
        data = raw[first * MAP_BYTES_PER_CODEWORD: (first + count) * MAP_BYTES_PER_CODEWORD]
        yield _codeword_symbols(MAP_CODE_N, MAP_CODE_RATE, data, count, scheme.modulation, scheme.repeat)
    per = codeword_symbols(plan.mcs)
    depth = group_codewords(per, interleave_symbols, bool(plan.flags & FLAG_PROBE))
    if depth == 1:
        yield from _data(plan, source)
        return
    yield from interleaved_groups(_data(plan, source), per, plan.codewords, depth)


def _data(plan: BurstPlan, source: PayloadSource) -> Iterator[np.ndarray]:
    """The data codewords' symbols in burst order, codeword after codeword, a batch at a time."""
    mcs, size = plan.mcs, codeword_bytes(plan.mcs)
    batch = batch_codewords(codeword_symbols(mcs))
    for run in plan.runs:
        for first in range(0, run.count, batch):
            count = min(batch, run.count - first)
            data = source.read(run.offset + first * size, count * size)
            yield _codeword_symbols(mcs.code_n, mcs.rate, data, count, mcs.modulation, mcs.repeat)


class _Fifo:
    """Takes exact counts of symbols from an iterator of arrays (copies only what it returns)."""

    def __init__(self, pieces: Iterator[np.ndarray]) -> None:
        self._pieces = pieces
        self._head = np.zeros(0, np.complex64)

    def take(self, n: int) -> np.ndarray:
        parts, have = [], 0
        while have < n:
            if not len(self._head):
                piece = next(self._pieces, None)
                if piece is None:
                    raise RadioError(f"burst content ran out {n - have} symbols early (layout and content disagree)")
                self._head = piece
            part = self._head[: n - have]
            self._head = self._head[len(part):]
            parts.append(part)
            have += len(part)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.complex64)


def _symbol_blocks(plan: BurstPlan, source: PayloadSource, block_symbols: int, interleave_symbols: int,
                   tail_zeros: int = 0) -> Iterator[np.ndarray]:
    """The burst's symbols (then tail_zeros zero symbols) in blocks of block_symbols (the last shorter)."""
    layout = plan.layout
    fifo = _Fifo(_content(plan, source, interleave_symbols))
    preamble = preamble_symbols()
    body_end = PREAMBLE_SYMBOLS + layout.body_symbols
    end = layout.total_symbols + tail_zeros
    for a in range(0, end, block_symbols):
        b = min(a + block_symbols, end)
        out = np.zeros(b - a, np.complex64)
        if a < PREAMBLE_SYMBOLS:
            stop = min(b, PREAMBLE_SYMBOLS)
            out[: stop - a] = preamble[a:stop]
        lo, hi = max(a, PREAMBLE_SYMBOLS), min(b, body_end)
        if lo < hi:
            pos, values = layout.body_pilots(lo - PREAMBLE_SYMBOLS, hi - PREAMBLE_SYMBOLS)
            at = pos + (PREAMBLE_SYMBOLS - a)
            data = np.ones(b - a, bool)
            data[: lo - a] = False
            data[hi - a:] = False
            data[at] = False
            out[at] = values
            out[data] = fifo.take(hi - lo - len(pos))
        yield out


def burst_symbols_array(plan: BurstPlan, payload: PayloadSource | bytes | memoryview | np.ndarray,
                        interleave_symbols: int = DEFAULT_INTERLEAVE_SYMBOLS) -> np.ndarray:
    """(layout.total_symbols,) complex64 unshaped, unscaled symbols of the burst (the receiver's reference)."""
    source = _checked_source(plan, payload)
    return next(_symbol_blocks(plan, source, plan.layout.total_symbols, interleave_symbols))


def _checked_source(plan: BurstPlan, payload: PayloadSource | bytes | memoryview | np.ndarray) -> PayloadSource:
    source = as_source(payload)
    if source.size != plan.payload_bytes:
        raise RadioError(f"the payload has {source.size} bytes but the plan says {plan.payload_bytes}")
    return source


# ----- pulse shaping -----

@lru_cache(maxsize=16)
def polyphase_taps(samples_per_symbol: int, rolloff: float) -> np.ndarray:
    """(sps, P) float64 RRC taps x TX_RMS x sqrt(sps), phase p holding taps p, p + sps, ... (zero-padded)."""
    sps = samples_per_symbol
    taps = rrc_taps(sps, rolloff).astype(np.float64)
    per_phase = -(-taps.size // sps)
    padded = np.zeros(per_phase * sps)
    padded[: taps.size] = taps
    scale = float(np.float32(TX_RMS * np.sqrt(sps)))
    out = np.ascontiguousarray(padded.reshape(per_phase, sps).T * scale)
    out.flags.writeable = False
    return out


@numba.njit(cache=True)
def _polyphase_kernel(x: np.ndarray, taps: np.ndarray, out: np.ndarray) -> None:
    """out[m sps + p] = sum_j x[m + P - 1 - j] taps[p, j]: x (B + P - 1,) complex64 history then block,
    out (B sps,) complex64; float64 sums in a fixed order (bit-exact whatever B)."""
    sps, p_taps = taps.shape
    blocks = x.size - p_taps + 1
    for m in range(blocks):
        top = m + p_taps - 1
        for p in range(sps):
            re = 0.0
            im = 0.0
            for j in range(p_taps):
                v = x[top - j]
                h = taps[p, j]
                re += np.float64(v.real) * h
                im += np.float64(v.imag) * h
            out[m * sps + p] = complex(re, im)


class RrcShaper:
    """Streaming RRC pulse shaper: symbols in, sps samples per symbol out, filter state kept between calls."""

    def __init__(self, samples_per_symbol: int, rolloff: float) -> None:
        self.taps = polyphase_taps(samples_per_symbol, rolloff)
        self._history = np.zeros(self.taps.shape[1] - 1, np.complex64)

    @property
    def flush_symbols(self) -> int:
        """Zero symbols that push the last symbol's tail out: (len(rrc taps) - 1) / sps."""
        return self.taps.shape[1] - 1

    def __call__(self, symbols: np.ndarray) -> np.ndarray:
        """(B,) complex64 symbols -> (B sps,) complex64 samples."""
        x = np.concatenate([self._history, np.asarray(symbols, np.complex64)])
        out = np.empty(len(symbols) * self.taps.shape[0], np.complex64)
        if len(symbols):
            _polyphase_kernel(x, self.taps, out)
        self._history = x[x.size - self._history.size:].copy()
        return out


def burst_chunks(plan: BurstPlan, payload: PayloadSource | bytes | memoryview | np.ndarray,
                 settings: LinkSettings, max_chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """The burst's IQ (full scale |x| <= 1, mean power TX_POWER) as complex64 chunks of at most max_chunk_samples
    (a multiple of sps, all full but the last); they add up to plan.samples(settings)."""
    sps = settings.samples_per_symbol
    if max_chunk_samples < sps:
        raise RadioError(f"max_chunk_samples must be at least samples_per_symbol ({sps}), got {max_chunk_samples}")
    source = _checked_source(plan, payload)
    shaper = RrcShaper(sps, settings.rolloff)
    blocks = _symbol_blocks(plan, source, max_chunk_samples // sps, settings.interleave_symbols, shaper.flush_symbols)
    for block in blocks:
        yield shaper(block)


def burst_waveform(plan: BurstPlan, payload: PayloadSource | bytes | memoryview | np.ndarray,
                   settings: LinkSettings) -> np.ndarray:
    """The whole burst's IQ in one array, one filter call (the reference burst_chunks equals bit for bit)."""
    symbols = burst_symbols_array(plan, payload, settings.interleave_symbols)
    shaper = RrcShaper(settings.samples_per_symbol, settings.rolloff)
    return shaper(np.concatenate([symbols, np.zeros(shaper.flush_symbols, np.complex64)]))
