"""The RaptorQ fountain layer: any sufficient set of symbols rebuilds the payload; every size is bounded first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radio.fountain import (MAX_SOURCE_SYMBOLS, MAX_SYMBOL_BYTES, PAYLOAD_ID_BYTES, FountainDecoder, FountainEncoder,
                            FountainError, check_params, symbol_bytes_for, symbol_id)
from testbed.messages import FOUNTAIN_MAX_SOURCE_SYMBOLS, FOUNTAIN_MAX_SYMBOL_BYTES, FOUNTAIN_MIN_SYMBOL_BYTES


def _decode(enc: FountainEncoder, dec: FountainDecoder, keep, batch: int = 16, limit: int = 100_000) -> int:
    """Feed the decoder what `keep(symbol)` lets through, batch by batch; symbols offered."""
    offered = 0
    while not dec.done and offered < limit:
        for s in enc.take(batch):
            offered += 1
            if keep(s):
                dec.add(s)
    return offered


@pytest.mark.parametrize("erasure", [0.0, 0.1, 0.5])
def test_round_trip_with_random_erasures_needs_about_k_symbols(erasure):
    rng = np.random.default_rng(int(erasure * 100))
    data = rng.bytes(100_003)
    overheads = []
    for trial in range(10):
        enc = FountainEncoder(data, symbol_bytes_for(1024))
        dec = FountainDecoder(len(data), enc.symbol_bytes)
        assert enc.source_count == dec.needed == math.ceil(len(data) / 1016) == 99
        _decode(enc, dec, lambda s: rng.random() >= erasure)
        assert dec.data == data
        overheads.append(dec.received - dec.needed)
    # RFC 6330: K symbols decode with probability ~99%, K + 2 with ~1 - 1e-6
    assert max(overheads) <= 2 and np.mean(overheads) < 0.5, overheads


def test_any_k_symbols_in_any_order_only_repair_symbols_included():
    rng = np.random.default_rng(7)
    data = rng.bytes(20_000)
    enc = FountainEncoder(data, 512)
    k = enc.source_count
    symbols = enc.take(3 * k)
    assert [symbol_id(s) for s in symbols] == [(0, esi) for esi in range(3 * k)]  # source first, then repair
    repair_only = [symbols[i] for i in rng.permutation(np.arange(k, 3 * k))[:k + 2]]
    dec = FountainDecoder(len(data), 512)
    for s in repair_only:
        dec.add(s)
    assert dec.done and dec.data == data


def test_the_encoder_continues_where_it_stopped_across_repair_batches():
    data = np.random.default_rng(1).bytes(5_000)
    a, b = FountainEncoder(data, 256), FountainEncoder(data, 256)
    one_go = a.take(500)
    pieces = [s for n in (3, 17, 1, 64, 200, 215) for s in b.take(n)]
    assert pieces == one_go and b.next_esi == 500
    assert len(set(one_go)) == 500


def test_duplicates_foreign_blocks_and_wrong_sizes_are_refused_and_memory_is_bounded():
    data = np.random.default_rng(2).bytes(10_000)
    enc = FountainEncoder(data, 256)
    dec = FountainDecoder(len(data), 256, max_overhead=1.0)
    first = enc.take(1)[0]
    assert dec.add(first) and not dec.add(first) and dec.duplicates == 1
    assert not dec.add(bytes([1]) + first[1:])  # source block 1 does not exist (raptorq would panic on it)
    assert not dec.add(first[:-1]) and dec.refused == 2
    assert dec.max_symbols == dec.needed + 16
    # a flood of forged symbols: the decoder holds at most max_symbols, and what it rebuilds from them is junk that
    # the session's SHA-256 check refuses (the code corrects erasures, it does not authenticate)
    flood = FountainDecoder(len(data), 256, max_overhead=1.0)
    junk = [int(0x00100000 + i).to_bytes(4, "big") + bytes(256) for i in range(flood.max_symbols + 50)]
    taken = sum(flood.add(s) for s in junk)
    assert taken == flood.received <= flood.max_symbols
    assert flood.done and flood.data != data


@pytest.mark.parametrize("length, size", [(0, 1016), (-1, 1016), (100, 63), (100, 1020), (100, MAX_SYMBOL_BYTES + 8),
                                          (MAX_SOURCE_SYMBOLS * 64 + 1, 64), (True, 1016), (100, 1016.0)])
def test_bounds_are_checked_before_anything_is_allocated(length, size):
    with pytest.raises(FountainError):
        check_params(length, size)
    with pytest.raises(FountainError):
        FountainDecoder(length, size)


def test_symbol_size_fills_a_packet_and_the_control_plane_agrees_on_the_bounds():
    assert symbol_bytes_for(1024) == 1016 and symbol_bytes_for(1024) + PAYLOAD_ID_BYTES <= 1024
    assert symbol_bytes_for(256) == 248
    with pytest.raises(FountainError):
        symbol_bytes_for(60)
    assert (FOUNTAIN_MIN_SYMBOL_BYTES, FOUNTAIN_MAX_SYMBOL_BYTES, FOUNTAIN_MAX_SOURCE_SYMBOLS) == \
        (64, MAX_SYMBOL_BYTES, MAX_SOURCE_SYMBOLS)
