"""Reassembly of a payload from pieces that arrive in any order, with the list of what is missing.

v1: `Reassembly` collects numbered packets. v2: `ByteReassembly` collects codewords addressed by payload
byte offset (design link_v2 section 5.7), in memory or spilled to a sparse file, hashing as it completes.
"""

from __future__ import annotations

import hashlib
import operator
import os
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from radio.errors import LinkError
from radio.intervals import DEFAULT_MAX_RANGES, IntervalSet, to_inclusive


def split(data: bytes, packet_payload_bytes: int) -> list[bytes]:
    """Cut data into packet payloads of at most packet_payload_bytes (at least one packet)."""
    if packet_payload_bytes < 1:
        raise LinkError(f"packet payload size must be >= 1 byte, got {packet_payload_bytes}")
    chunks = [data[i:i + packet_payload_bytes] for i in range(0, len(data), packet_payload_bytes)]
    return chunks or [b""]


class Reassembly:
    """Collects the packets of one session; only CRC-checked packets of this session are accepted."""

    def __init__(self, session: int, total: int, max_bytes: int | None = None) -> None:
        if total < 1:
            raise LinkError(f"a session has at least one packet, got total={total}")
        self.session, self.total = session, total
        self.max_bytes = max_bytes
        self._parts: dict[int, bytes] = {}
        self._size = 0

    def add(self, session: int, seq: int, total: int, payload: bytes) -> bool:
        """Store one packet; False when it is foreign, a duplicate or inconsistent with the session."""
        if session != self.session or total != self.total or not 0 <= seq < self.total or seq in self._parts:
            return False
        if self.max_bytes is not None and self._size + len(payload) > self.max_bytes:
            return False
        self._parts[seq] = payload
        self._size += len(payload)
        return True

    @property
    def received(self) -> int:
        return len(self._parts)

    @property
    def complete(self) -> bool:
        return len(self._parts) == self.total

    def missing(self) -> list[int]:
        """Sequence numbers not yet received, ascending."""
        return [s for s in range(self.total) if s not in self._parts]

    def data(self) -> bytes:
        """The reassembled bytes; LinkError while packets are missing."""
        if not self.complete:
            raise LinkError(f"{self.total - self.received} of {self.total} packets are still missing")
        return b"".join(self._parts[s] for s in range(self.total))

    def sha256(self) -> str:
        return hashlib.sha256(self.data()).hexdigest()


# --- v2: reassembly by payload byte offset ---------------------------------------------------------

DEFAULT_MEMORY_LIMIT_BYTES = 64 << 20  # edge.reassembly_memory_bytes
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 34  # 16 GiB: refuse larger announced payloads before allocating anything
MISSING_LIMIT = 4096  # ranges per MissingRequest
HASH_CHUNK_BYTES = 1 << 20  # bytes read back per step when the hashed prefix grows
MAX_READ_BYTES = 64 << 20  # largest single read()
SPILL_PREFIX = "airlora-reassembly-"


def _close_spill(fd: int | None, path: str | None) -> None:
    """Close and delete a spill file (idempotent; also the finalizer of a ByteReassembly never closed)."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


class ByteReassembly:
    """One v2 payload rebuilt from codewords addressed by byte offset, hashed (SHA-256) as it completes.

    Received bytes are an IntervalSet. The data lives in a bytearray when payload_bytes <=
    memory_limit_bytes, else in a sparse temporary file in spill_dir (preallocated with ftruncate, written
    with os.pwrite, deleted on close, by the context manager, or when the object is collected). The first
    write of a byte wins: later writes of a covered byte are ignored (duplicates are expected; a CRC-16
    collision that disagrees cannot be told apart anyway). The SHA-256 follows the contiguous received
    prefix: each byte is hashed once, when the prefix grows past it, so `sha256_hex()` is free at the end.
    Errors are LinkError (a RadioError) with a one-line message naming the field.
    """

    def __init__(self, payload_bytes: int, memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
                 spill_dir: str | Path | None = None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 max_ranges: int = DEFAULT_MAX_RANGES) -> None:
        payload_bytes = _integer(payload_bytes, "payload_bytes")
        max_payload_bytes = _integer(max_payload_bytes, "max_payload_bytes")
        memory_limit_bytes = _integer(memory_limit_bytes, "memory_limit_bytes")
        if not 0 <= payload_bytes <= max_payload_bytes:
            raise LinkError(f"payload_bytes must be within 0..{max_payload_bytes} (max_payload_bytes), "
                            f"got {payload_bytes}")
        if memory_limit_bytes < 0:
            raise LinkError(f"memory_limit_bytes must be >= 0, got {memory_limit_bytes}")
        self.payload_bytes = payload_bytes
        self._received = IntervalSet(max_ranges=max_ranges)
        self._sha = hashlib.sha256()
        self._hashed = 0
        self._closed = False
        self._buf: bytearray | None = None
        self._fd: int | None = None
        self._path: str | None = None
        if payload_bytes <= memory_limit_bytes:
            self._buf = bytearray(payload_bytes)
        else:
            self._open_spill(Path(spill_dir) if spill_dir is not None else Path(tempfile.gettempdir()))
        self._finalizer = weakref.finalize(self, _close_spill, self._fd, self._path)

    def _open_spill(self, folder: Path) -> None:
        try:
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            raise LinkError(f"spill_dir {str(folder)!r} is not usable: {exc.strerror or exc}") from None
        if free < self.payload_bytes:
            raise LinkError(f"spill_dir {str(folder)!r} has {free} bytes free, the payload needs "
                            f"{self.payload_bytes} (payload_bytes)")
        try:
            fd, path = tempfile.mkstemp(prefix=SPILL_PREFIX, suffix=".part", dir=folder)
        except OSError as exc:
            raise LinkError(f"spill_dir {str(folder)!r}: cannot create a spill file: {exc.strerror or exc}") from None
        try:
            os.ftruncate(fd, self.payload_bytes)  # sparse: blocks are allocated as they are written
        except BaseException as exc:
            _close_spill(fd, path)
            if isinstance(exc, OSError):
                raise LinkError(f"spill file {path!r}: cannot size it to {self.payload_bytes} bytes: "
                                f"{exc.strerror or exc}") from None
            raise
        self._fd, self._path = fd, path

    # --- input -----------------------------------------------------------------------------------

    def write(self, offset: int, data: bytes | bytearray | memoryview | np.ndarray) -> int:
        """Store data at payload byte `offset` (bytes past payload_bytes are cut: the last codeword's
        padding); returns the bytes newly received. Already received bytes are left as they are."""
        self._check_open()
        offset = _integer(offset, "offset")
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError):
            raise LinkError(f"data must be contiguous bytes, got {type(data).__name__}") from None
        if not 0 <= offset < self.payload_bytes and not (view.nbytes == 0 and offset == self.payload_bytes):
            raise LinkError(f"offset {offset} outside the payload of {self.payload_bytes} bytes (payload_bytes)")
        stop = min(offset + view.nbytes, self.payload_bytes)
        if stop == offset:
            return 0
        cursor = offset
        for start, end in self._received.overlapping(offset, stop) + [(stop, stop)]:
            if start > cursor:
                self._put(cursor, view[cursor - offset: start - offset])
            cursor = max(cursor, end)
        gained = self._received.add(offset, stop)
        if offset <= self._hashed < stop:
            self._advance_hash()
        return gained

    def _put(self, offset: int, piece: memoryview) -> None:
        if self._buf is not None:
            self._buf[offset: offset + piece.nbytes] = piece
            return
        done = 0
        while done < piece.nbytes:
            try:
                done += os.pwrite(self._fd, piece[done:], offset + done)
            except OSError as exc:
                raise LinkError(f"spill file {self._path!r}: write at byte {offset + done} failed: "
                                f"{exc.strerror or exc}") from None

    def _advance_hash(self) -> None:
        """Hash the bytes between the hashed mark and the end of the received prefix, in bounded chunks."""
        end = self._received.contiguous_end(0)
        while self._hashed < end:
            step = min(HASH_CHUNK_BYTES, end - self._hashed)
            self._sha.update(self._read(self._hashed, step))
            self._hashed += step

    def _read(self, offset: int, length: int) -> bytes | memoryview:
        if self._buf is not None:
            return memoryview(self._buf)[offset: offset + length]
        parts = []
        while length > 0:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                raise LinkError(f"spill file {self._path!r}: short read at byte {offset}")
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # --- state -----------------------------------------------------------------------------------

    @property
    def received_bytes(self) -> int:
        return self._received.covered_bytes

    @property
    def received(self) -> IntervalSet:
        """A copy of the received byte ranges (half-open)."""
        return self._received.copy()

    @property
    def complete(self) -> bool:
        return self._received.covered_bytes == self.payload_bytes

    @property
    def in_memory(self) -> bool:
        return self._fd is None

    @property
    def spill_path(self) -> Path | None:
        """The spill file while it exists (None in memory or after close)."""
        return Path(self._path) if self._path is not None and not self._closed else None

    def missing(self, limit: int = MISSING_LIMIT) -> list[tuple[int, int]]:
        """The first `limit` missing byte ranges as inclusive [first, last] offsets (a MissingRequest's)."""
        limit = _integer(limit, "limit")
        if limit < 0:
            raise LinkError(f"limit must be >= 0, got {limit}")
        return to_inclusive(self._received.missing(self.payload_bytes, limit))

    def read(self, offset: int, length: int) -> bytes:
        """Received bytes [offset, offset + length); LinkError if any of them is missing."""
        self._check_open()
        offset, length = _integer(offset, "offset"), _integer(length, "length")
        if not 0 <= length <= MAX_READ_BYTES or not 0 <= offset <= self.payload_bytes - length:
            raise LinkError(f"read of {length} bytes at {offset}: outside the payload of {self.payload_bytes} "
                            f"bytes or over {MAX_READ_BYTES} bytes (length)")
        if not self._received.covers(offset, offset + length):
            raise LinkError(f"bytes {offset}..{offset + length - 1} are not all received")
        return bytes(self._read(offset, length))

    def sha256_hex(self) -> str:
        """SHA-256 of the whole payload (hex); LinkError while bytes are missing."""
        if not self.complete:
            raise LinkError(f"{self.payload_bytes - self.received_bytes} of {self.payload_bytes} payload bytes "
                            f"are still missing")
        return self._sha.hexdigest()

    def open_payload(self) -> bytes | Path:
        """The complete payload: `bytes` when held in memory, else the spill file's Path.

        The file stays valid until close() (which deletes it): read or move it before. LinkError while
        bytes are missing or after close.
        """
        self._check_open()
        self.sha256_hex()  # refuses an incomplete payload
        if self._buf is not None:
            return bytes(self._buf)
        return Path(self._path)

    # --- lifetime --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LinkError("reassembly is closed")

    def close(self) -> None:
        """Free the buffer, or close and delete the spill file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._buf = None
        self._finalizer()

    def __enter__(self) -> ByteReassembly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _integer(value: object, field: str) -> int:
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise LinkError(f"{field} must be an integer, got {value!r}") from None
