"""Packet framing: a CRC-protected header and a CRC-32 protected payload.

A header that fails its CRC-16 or carries impossible values raises FrameError; a payload that fails its
CRC-32 is reported as such (an erasure), never delivered as data.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from radio.errors import FrameError

FRAME_VERSION = 1
_HEADER = struct.Struct(">BBIIIH")  # version, mcs index, session, seq, total, payload length
HEADER_BYTES = _HEADER.size + 2  # + CRC-16/CCITT
HEADER_BITS = 8 * HEADER_BYTES
MAX_PAYLOAD_BYTES = 65000
CRC_BYTES = 4


@dataclass(frozen=True)
class Header:
    """What every packet says about itself."""

    mcs_index: int
    session: int
    seq: int
    total: int
    length: int
    version: int = FRAME_VERSION

    def pack(self) -> bytes:
        """18 bytes: the fields, big-endian, then CRC-16/CCITT of them."""
        body = _HEADER.pack(self.version, self.mcs_index, self.session, self.seq, self.total, self.length)
        return body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")


def parse_header(raw: bytes, mcs_count: int) -> Header:
    """Check the CRC and the field ranges of 18 header bytes; raise FrameError when anything is off."""
    if len(raw) != HEADER_BYTES:
        raise FrameError(f"header has {len(raw)} bytes, expected {HEADER_BYTES}")
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "big")
    if binascii.crc_hqx(body, 0xFFFF) != crc:
        raise FrameError("header CRC mismatch")
    version, mcs_index, session, seq, total, length = _HEADER.unpack(body)
    if version != FRAME_VERSION:
        raise FrameError(f"frame version {version} is not supported (expected {FRAME_VERSION})")
    if mcs_index >= mcs_count:
        raise FrameError(f"header names MCS index {mcs_index}; only {mcs_count} exist")
    if total == 0 or seq >= total:
        raise FrameError(f"header sequence {seq} is outside a total of {total}")
    if not 1 <= length <= MAX_PAYLOAD_BYTES:
        raise FrameError(f"header payload length {length} is outside 1..{MAX_PAYLOAD_BYTES}")
    return Header(mcs_index, session, seq, total, length, version)


def bytes_to_bits(data: bytes) -> np.ndarray:
    """bytes -> uint8 bits, most significant bit first."""
    return np.unpackbits(np.frombuffer(data, np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """uint8 bits (a multiple of 8) -> bytes."""
    return np.packbits(np.asarray(bits, np.uint8)).tobytes()


def payload_with_crc(payload: bytes) -> bytes:
    """The payload followed by its CRC-32 (big-endian)."""
    return payload + zlib.crc32(payload).to_bytes(CRC_BYTES, "big")


def check_payload(raw: bytes) -> bytes | None:
    """Strip and verify the CRC-32: the payload when it matches, None when it does not."""
    if len(raw) <= CRC_BYTES:
        return None
    payload, crc = raw[:-CRC_BYTES], int.from_bytes(raw[-CRC_BYTES:], "big")
    return payload if zlib.crc32(payload) == crc else None
