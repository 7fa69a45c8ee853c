"""Payload bytes <-> LDPC codeword bits for v2 bursts: L payload bytes, CRC-16, known zero filler.

One codeword of code c carries `L = floor((c.k - 16) / 8)` payload bytes (`bytes_per_codeword`: 119 / 160 /
180 / 200 at n = 1944 and rate 1/2 / 2/3 / 3/4 / 5/6, 38 at n = 648 rate 1/2). Its k information bits are,
MSB first: the L bytes, their CRC-16/CCITT (`binascii.crc_hqx`, initial value 0xFFFF, big-endian: the v1
header's CRC), then zero filler bits up to k. All n coded bits go on air (the systematic LDPC codeword,
filler included); the receiver knows the filler is zero and sets its LLRs to +ldpc.LLR_LIMIT before
decoding (shortening). A codeword at byte `offset` of a payload carries `payload[offset : offset + L]`,
zero-padded past the payload's end.

LLR convention as in radio.fec: ``llr = log(P(bit=0) / P(bit=1))``, positive means 0.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

from radio import ldpc
from radio.errors import FecError
from radio.ldpc import LdpcCode

CRC_BITS = 16
CRC_INIT = 0xFFFF  # as the v1 header: an all-zero codeword (LDPC-valid) never passes the CRC
FILLER_LLR = ldpc.LLR_LIMIT  # a known 0: the most confident LLR the decoder accepts


def bytes_per_codeword(c: LdpcCode) -> int:
    """L: payload bytes one codeword of `c` carries."""
    return (c.k - CRC_BITS) // 8


def filler_bits(c: LdpcCode) -> int:
    """Known zero bits after the CRC, up to k (0..7)."""
    return c.k - 8 * bytes_per_codeword(c) - CRC_BITS


def filler_slice(c: LdpcCode) -> slice:
    """Positions of the filler bits within the codeword (inside its information part)."""
    return slice(c.k - filler_bits(c), c.k)


def codeword_count(payload_bytes: int, c: LdpcCode, offset: int = 0) -> int:
    """Codewords that carry payload[offset:] (the last one zero-padded)."""
    if not 0 <= offset <= payload_bytes:
        raise FecError(f"offset {offset} outside the payload of {payload_bytes} bytes")
    return -(-(payload_bytes - offset) // bytes_per_codeword(c))


def _crc16(rows: np.ndarray) -> np.ndarray:
    """(b, L) uint8 -> (b, 2) uint8: CRC-16/CCITT of each row, big-endian."""
    out = np.empty((rows.shape[0], 2), np.uint8)
    for i, row in enumerate(rows):
        crc = binascii.crc_hqx(row.tobytes(), CRC_INIT)
        out[i, 0], out[i, 1] = crc >> 8, crc & 0xFF
    return out


def _chunks(payload: bytes | bytearray | memoryview | np.ndarray, c: LdpcCode, offset: int,
            count: int | None) -> np.ndarray:
    """(count, L) uint8: payload[offset + i L : offset + (i + 1) L], zero-padded past the end."""
    data = np.frombuffer(payload, np.uint8) if not isinstance(payload, np.ndarray) else payload
    if data.dtype != np.uint8 or data.ndim != 1:
        raise FecError(f"payload must be bytes or a 1-D uint8 array, got {data.dtype} {data.shape}")
    size = bytes_per_codeword(c)
    if count is None:
        count = codeword_count(data.size, c, offset)
    elif count < 0 or not 0 <= offset <= data.size:
        raise FecError(f"count must be >= 0 and offset within 0..{data.size}, got {count}, {offset}")
    rows = np.zeros((count, size), np.uint8)
    flat = rows.reshape(-1)
    part = data[offset: offset + flat.size]
    flat[: part.size] = part
    return rows


def info_bits(c: LdpcCode, payload: bytes | bytearray | memoryview | np.ndarray, offset: int = 0,
              count: int | None = None) -> np.ndarray:
    """(count, k) uint8 information bits of the codewords at offset + i L: data, CRC-16, zero filler.

    count defaults to the codewords needed to reach the payload's end; codewords past it are all padding.
    """
    rows = _chunks(payload, c, offset, count)
    out = np.zeros((rows.shape[0], c.k), np.uint8)
    body = 8 * rows.shape[1]
    out[:, :body] = np.unpackbits(rows, axis=1)
    out[:, body: body + CRC_BITS] = np.unpackbits(_crc16(rows), axis=1)
    return out


def encode(c: LdpcCode, payload: bytes | bytearray | memoryview | np.ndarray, offset: int = 0,
           count: int | None = None) -> np.ndarray:
    """(count, n) uint8 coded bits (on-air order) of the codewords at offset + i L of `payload`."""
    info = info_bits(c, payload, offset, count)
    return ldpc.encode(c, info) if info.shape[0] else np.zeros((0, c.n), np.uint8)


def force_filler(c: LdpcCode, llr: np.ndarray) -> np.ndarray:
    """(n,) or (b, n) float32 LLRs with the filler positions set to +FILLER_LLR (a new array)."""
    x = np.array(llr, np.float32)
    if x.shape[-1:] != (c.n,) or x.ndim > 2:
        raise FecError(f"LLRs must have shape ({c.n},) or (batch, {c.n}), got {np.shape(llr)}")
    x[..., filler_slice(c)] = FILLER_LLR
    return x


@dataclass(frozen=True)
class CodewordResult:
    """Decoded batch. data (b, L) uint8 payload bytes (meaningful where ok); ok (b,): parity checks,
    CRC-16 and zero filler all hold; ldpc_ok (b,) parity alone; iterations (b,) int32."""

    data: np.ndarray
    ok: np.ndarray
    ldpc_ok: np.ndarray
    iterations: np.ndarray

    def payload(self, i: int) -> bytes | None:
        """Codeword i's payload bytes, or None when it failed (an erasure)."""
        return self.data[i].tobytes() if self.ok[i] else None


def check(c: LdpcCode, info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(b, k) hard information bits -> (data (b, L) uint8, crc_and_filler_ok (b,) bool)."""
    bits = np.asarray(info, np.uint8)
    if bits.ndim != 2 or bits.shape[1] != c.k:
        raise FecError(f"information bits must have shape (batch, {c.k}), got {bits.shape}")
    size = bytes_per_codeword(c)
    data = np.packbits(bits[:, : 8 * size], axis=1)
    crc = np.packbits(bits[:, 8 * size: 8 * size + CRC_BITS], axis=1)
    ok = np.all(crc == _crc16(data), axis=1) & ~np.any(bits[:, filler_slice(c)], axis=1)
    return data, ok


def decode(c: LdpcCode, llr: np.ndarray, max_iterations: int = ldpc.DEFAULT_MAX_ITERATIONS,
           scale: float = ldpc.DEFAULT_SCALE) -> CodewordResult:
    """(n,) or (b, n) channel LLRs -> payload bytes and verdicts: filler forced, LDPC decoded, CRC checked.

    The caller's array is not modified (HARQ may keep it).
    """
    x = force_filler(c, llr)
    result = ldpc.decode(c, x.reshape(-1, c.n), max_iterations, scale)
    data, crc_ok = check(c, result.bits)
    return CodewordResult(data, result.ok & crc_ok, result.ok, result.iterations)
