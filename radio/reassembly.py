"""Reassembly of a payload from packets that arrive in any order, with the list of what is missing."""

from __future__ import annotations

import hashlib

from radio.errors import LinkError


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
