"""A fountain code (RaptorQ, RFC 6330) over the `raptorq` package: any K-and-a-few symbols rebuild the payload.

A symbol travels as one packet payload: raptorq's 4-byte payload id (source block number, then a 24-bit
encoding symbol id, ESI) followed by `symbol_bytes` of data. The layer knows nothing of packets or codewords:
whatever carries one symbol per payload (v1 packets today, v2 codewords later) can carry it.

The encoder hands out symbols in a fixed order: every source symbol (ESI < K), then repair symbols round-robin
over the source blocks; `take(n)` continues where the last call stopped (repair symbols are made in batches,
doubling, so a long transfer costs amortized O(1) per symbol). The decoder takes any symbols in any order,
drops duplicates and foreign ones, and is bounded: the transfer length and symbol size are checked before
anything is allocated, and it holds at most `max_symbols` symbols.
"""

from __future__ import annotations

import math
import struct

from radio.errors import RadioError

PAYLOAD_ID_BYTES = 4
ALIGNMENT = 8
"""RaptorQ's symbol alignment: with_defaults rounds the symbol size down to a multiple of it."""
MIN_SYMBOL_BYTES = 64
MAX_SYMBOL_BYTES = 65000 - PAYLOAD_ID_BYTES - (65000 - PAYLOAD_ID_BYTES) % ALIGNMENT
MAX_SOURCE_SYMBOLS = 56403
"""RFC 6330's largest source block. With symbols of 64 bytes or more and at most this many source symbols,
raptorq's defaults (10 MiB of decoder memory) make exactly one source block, so a symbol is named by its ESI."""
MAX_TRANSFER_BYTES = MAX_SOURCE_SYMBOLS * MAX_SYMBOL_BYTES
MAX_ESI = (1 << 24) - 1
DEFAULT_MAX_OVERHEAD = 2.0
"""A decoder holds at most this many symbols per source symbol (plus a few): a flood cannot grow it further."""
FIRST_REPAIR_BATCH = 64


class FountainError(RadioError):
    """Bad fountain parameters (transfer length, symbol size) or a malformed symbol."""


def symbol_bytes_for(packet_payload_bytes: int) -> int:
    """The symbol size that fills a packet payload of packet_payload_bytes (payload id included, aligned)."""
    size = packet_payload_bytes - PAYLOAD_ID_BYTES
    size -= size % ALIGNMENT
    if not MIN_SYMBOL_BYTES <= size <= MAX_SYMBOL_BYTES:
        raise FountainError(f"packet payload of {packet_payload_bytes} bytes leaves no room for a RaptorQ symbol "
                            f"({MIN_SYMBOL_BYTES + PAYLOAD_ID_BYTES}..{MAX_SYMBOL_BYTES + PAYLOAD_ID_BYTES} bytes)")
    return size


def check_params(transfer_bytes: int, symbol_bytes: int) -> int:
    """The number of source symbols K of a transfer; FountainError naming the bound when one is broken."""
    if isinstance(transfer_bytes, bool) or not isinstance(transfer_bytes, int) \
            or not 1 <= transfer_bytes <= MAX_TRANSFER_BYTES:
        raise FountainError(f"transfer length {transfer_bytes!r} is outside 1..{MAX_TRANSFER_BYTES} bytes")
    if isinstance(symbol_bytes, bool) or not isinstance(symbol_bytes, int) \
            or not MIN_SYMBOL_BYTES <= symbol_bytes <= MAX_SYMBOL_BYTES or symbol_bytes % ALIGNMENT:
        raise FountainError(f"symbol size {symbol_bytes!r} must be a multiple of {ALIGNMENT} in "
                            f"{MIN_SYMBOL_BYTES}..{MAX_SYMBOL_BYTES} bytes")
    k = math.ceil(transfer_bytes / symbol_bytes)
    if k > MAX_SOURCE_SYMBOLS:
        raise FountainError(f"{transfer_bytes} bytes in {symbol_bytes}-byte symbols make {k} source symbols, more "
                            f"than {MAX_SOURCE_SYMBOLS}: use larger symbols")
    return k


def symbol_id(packet: bytes) -> tuple[int, int]:
    """(source block number, ESI) of a serialized symbol."""
    if len(packet) < PAYLOAD_ID_BYTES:
        raise FountainError(f"a symbol has at least {PAYLOAD_ID_BYTES} bytes, got {len(packet)}")
    word = struct.unpack_from(">I", packet)[0]
    return word >> 24, word & MAX_ESI


class FountainEncoder:
    """Symbols of one payload: the K source symbols, then as many repair symbols as the sender asks for."""

    def __init__(self, data: bytes, symbol_bytes: int) -> None:
        import raptorq

        self.source_count = check_params(len(data), symbol_bytes)
        self.transfer_bytes, self.symbol_bytes = len(data), symbol_bytes
        self._encoder = raptorq.Encoder.with_defaults(bytes(data), symbol_bytes + PAYLOAD_ID_BYTES)
        self._source = [bytes(p) for p in self._encoder.get_encoded_packets(0)]
        ids = [symbol_id(p) for p in self._source]
        if ids != [(0, e) for e in range(self.source_count)] or len(self._source[0]) != symbol_bytes + PAYLOAD_ID_BYTES:
            raise FountainError(f"raptorq made {len(ids)} source symbols of {len(self._source[0])} bytes in "
                                f"{len({b for b, _ in ids})} blocks; expected {self.source_count} of "
                                f"{symbol_bytes + PAYLOAD_ID_BYTES} in one block")
        self._repair: list[bytes] = []  # generated repair symbols not handed out yet, ascending ESI
        self._made = 0  # repair symbols generated so far (ESI K .. K + _made - 1)
        self.sent = 0  # symbols handed out; the next one has ESI `sent`

    @property
    def next_esi(self) -> int:
        """ESI of the next symbol take() hands out."""
        return self.sent

    def take(self, n: int) -> list[bytes]:
        """The next n symbols (source first, then repair), serialized with their payload ids."""
        if n < 0:
            raise FountainError(f"take() needs n >= 0, got {n}")
        out = self._source[self.sent:self.sent + n] if self.sent < self.source_count else []
        self.sent += len(out)
        while len(out) < n:
            if not self._repair:
                self._make_repair(n - len(out))
            got = self._repair[:n - len(out)]
            del self._repair[:len(got)]
            out += got
            self.sent += len(got)
        return out

    def _make_repair(self, wanted: int) -> None:
        """Generate the next batch of repair symbols (at least `wanted`; batches double) and keep the new ones."""
        limit = MAX_ESI + 1 - self.source_count
        target = min(self._made + max(wanted, FIRST_REPAIR_BATCH, self._made), limit)
        if target <= self._made:
            raise FountainError(f"the 24-bit ESI space is used up after {self._made} repair symbols")
        first = self.source_count + self._made
        packets = self._encoder.get_encoded_packets(target)
        self._repair = [bytes(p) for p in packets if symbol_id(p)[1] >= first]
        self._made = target


class FountainDecoder:
    """Rebuilds one payload from any sufficient set of its symbols; `data` once `done`."""

    def __init__(self, transfer_bytes: int, symbol_bytes: int, max_overhead: float = DEFAULT_MAX_OVERHEAD) -> None:
        self.needed = check_params(transfer_bytes, symbol_bytes)
        self.transfer_bytes, self.symbol_bytes = transfer_bytes, symbol_bytes
        self.max_symbols = int(self.needed * max_overhead) + 16
        self._decoder = None  # made with the first symbol
        self._seen: set[int] = set()
        self.received = 0  # distinct symbols taken in
        self.duplicates = 0
        self.refused = 0  # malformed, foreign block, or beyond max_symbols
        self.data: bytes | None = None

    @property
    def done(self) -> bool:
        return self.data is not None

    def add(self, packet: bytes) -> bool:
        """Take one serialized symbol; True when it was new (it may have completed the payload: see `done`)."""
        if self.done:
            return False
        if len(packet) != self.symbol_bytes + PAYLOAD_ID_BYTES:
            self.refused += 1
            return False
        sbn, esi = symbol_id(packet)
        if esi in self._seen and sbn == 0:
            self.duplicates += 1
            return False
        if sbn != 0 or len(self._seen) >= self.max_symbols:  # raptorq panics on a block it does not have
            self.refused += 1
            return False
        if self._decoder is None:
            import raptorq

            self._decoder = raptorq.Decoder.with_defaults(self.transfer_bytes, self.symbol_bytes + PAYLOAD_ID_BYTES)
        self._seen.add(esi)
        self.received += 1
        result = self._decoder.decode(bytes(packet))
        if result is not None:
            self.data = bytes(result)[:self.transfer_bytes]
            self._decoder, self._seen = None, set()  # done: the decoder's memory goes
        return True
