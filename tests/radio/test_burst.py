"""The v2 burst layout (radio/burst.py): SIG header packing and coding, MAP runs, pilot grid, symbol positions."""

from __future__ import annotations

import binascii

import numpy as np
import pytest

from radio import burst
from radio.burst import (FLAG_LAST, FLAG_PROBE, GAP_SYMBOLS, PILOT_GROUP, PILOT_PERIOD, PREAMBLE_SYMBOLS,
                         SIG_SYMBOLS, BurstLayout, CodewordRun, SigHeader, decode_runs, decode_sig, encode_runs,
                         map_codewords_for, sig_symbols)
from radio.errors import FrameError, RadioError
from radio.mcs import LDPC_MCS_TABLE, by_name
from radio.preamble import LTF_LENGTH, ltf2_period, ltf2_symbols, ltf_period, stf_symbols

SIG = SigHeader(mcs=20, flags=FLAG_LAST, map_codewords=3, codewords=1234, session=0xDEADBEEF, burst=7,
                first_offset=(1 << 40) - 200, payload_bytes=(1 << 40) - 1)


# ----- SIG -----

def test_sig_packs_26_bytes_and_round_trips_extreme_fields() -> None:
    raw = SIG.pack()
    assert len(raw) == SigHeader.SIZE == 26
    assert raw[:4] == bytes([2, 20, FLAG_LAST, 3]) and raw[4:6] == (1234).to_bytes(2, "big")
    assert raw[14:19] == ((1 << 40) - 200).to_bytes(5, "big")
    assert int.from_bytes(raw[-2:], "big") == binascii.crc_hqx(raw[:-2], 0xFFFF)
    assert SigHeader.unpack(raw) == SIG
    zero = SigHeader(16, 0, 0, 0, 0, 0, 0, 0)
    assert SigHeader.unpack(zero.pack()) == zero
    assert SIG.last and not SIG.probe and SIG.scheme.name == "ldpc-qpsk-3/4"
    assert SigHeader(30, FLAG_PROBE, 0, 1, 1, 1, 0, 1).probe


@pytest.mark.parametrize("field, value, match", [
    ("version", 1, "version"), ("mcs", 15, "MCS index 15"), ("mcs", 31, "MCS index 31"),
    ("flags", 0x04, "unknown bits"), ("first_offset", 10, "past the payload"),
])
def test_sig_unpack_refuses_bad_fields_with_a_good_crc(field: str, value: int, match: str) -> None:
    fields = {**SIG.__dict__, "payload_bytes": 5, "first_offset": 0, field: value}
    body = burst._SIG.pack(fields["version"], fields["mcs"], fields["flags"], fields["map_codewords"],
                           fields["codewords"], fields["session"], fields["burst"],
                           fields["first_offset"].to_bytes(5, "big"), fields["payload_bytes"].to_bytes(5, "big"))
    with pytest.raises(FrameError, match=match):
        SigHeader.unpack(body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big"))


def test_sig_unpack_refuses_bad_crc_and_length() -> None:
    raw = bytearray(SIG.pack())
    raw[5] ^= 0x10
    with pytest.raises(FrameError, match="CRC"):
        SigHeader.unpack(bytes(raw))
    with pytest.raises(FrameError, match="25 bytes"):
        SigHeader.unpack(SIG.pack()[:-1])


@pytest.mark.parametrize("field, value", [("codewords", 1 << 16), ("session", -1), ("first_offset", 1 << 40),
                                          ("map_codewords", 256), ("mcs", 7)])
def test_sig_pack_refuses_fields_that_do_not_fit(field: str, value: int) -> None:
    with pytest.raises(RadioError, match=field if field != "mcs" else "MCS index"):
        SigHeader(**{**SIG.__dict__, field: value}).pack()


def test_sig_is_856_bpsk_symbols_and_decodes_through_noise() -> None:
    symbols = sig_symbols(SIG)
    assert symbols.shape == (SIG_SYMBOLS,) == (856,) and np.all(np.isin(symbols, [1, -1]))
    rng = np.random.default_rng(1)
    noisy = symbols.real + rng.normal(0, 1.0, symbols.size)  # Es/N0 = 0 dB on BPSK: the 1/4 code holds
    assert decode_sig(2.0 * noisy) == SIG
    flipped = symbols.real.copy()
    flipped[:400] *= -1  # half the block wrong: the CRC catches it
    with pytest.raises(FrameError):
        decode_sig(4.0 * flipped)


# ----- MAP runs -----

def test_runs_round_trip_through_varints_with_padding_and_backward_runs() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        runs = [CodewordRun(int(o), int(c)) for o, c in zip(rng.integers(0, 1 << 40, n), rng.integers(1, 3000, n))]
        raw = encode_runs(runs, 200)
        padded = raw + bytes(-len(raw) % burst.MAP_BYTES_PER_CODEWORD)
        total = sum(r.count for r in runs)
        assert decode_runs(padded, runs[0].offset, 200, total) == tuple(runs)


def test_typical_runs_take_about_three_bytes_and_twelve_fit_a_map_codeword() -> None:
    runs = [CodewordRun(100_000 * i, 5) for i in range(12)]  # gaps of ~100 kB, 5 codewords each
    assert len(encode_runs(runs, 200)) == 2 + 11 * 4  # run 0: delta 0 and count, 1 byte each; then 3 + 1
    assert map_codewords_for(runs[:1], 200) == 0 and map_codewords_for(runs, 200) == 2
    near = [CodewordRun(3000 * i, 5) for i in range(12)]  # gaps of 2 kB: 2-byte deltas, 3 bytes a run
    assert len(encode_runs(near, 200)) == 2 + 11 * 3 and map_codewords_for(near, 200) == 1
    assert encode_runs([CodewordRun(7, 1), CodewordRun(207, 300)], 200) == bytes([0, 1, 0, 0xAC, 0x02])


def test_runs_that_cannot_add_up_are_refused() -> None:
    raw = encode_runs([CodewordRun(0, 5), CodewordRun(2000, 5)], 200)
    with pytest.raises(FrameError, match="ends inside"):
        decode_runs(raw, 0, 200, 11)  # the counts add up to 10: the padding-less bytes run out
    with pytest.raises(FrameError, match="impossible"):
        decode_runs(raw, 0, 200, 7)  # the second run overshoots
    with pytest.raises(FrameError, match="impossible"):
        decode_runs(bytes(8), 0, 200, 1)  # zero padding is a count-0 run
    with pytest.raises(RadioError, match="count >= 1"):
        encode_runs([CodewordRun(0, 0)], 200)


# ----- preamble, sizes -----

def test_ltf2_has_the_ltf_structure_and_another_sequence() -> None:
    a, b = ltf_period(), ltf2_period()
    assert np.all(np.isin(b, [1, -1])) and np.array_equal(ltf2_symbols(), np.tile(b, 2))
    cross = np.abs(np.correlate(np.tile(b, 3), a, "valid")).max() / LTF_LENGTH
    assert cross < 0.4  # any lag: the two LTFs are told apart by correlation
    assert np.array_equal(burst.preamble_symbols()[:128], stf_symbols())
    assert np.array_equal(burst.preamble_symbols()[128:], ltf2_symbols())


@pytest.mark.parametrize("name, size, symbols", [
    ("ldpc-bpsk-1/4", 119, 3888), ("ldpc-qpsk-2/3", 160, 972), ("ldpc-16qam-3/4", 180, 486),
    ("ldpc-64qam-5/6", 200, 324), ("ldpc-256qam-5/6", 200, 243),
])
def test_codeword_sizes(name: str, size: int, symbols: int) -> None:
    mcs = by_name(name)
    assert burst.codeword_bytes(mcs) == size and burst.codeword_symbols(mcs) == symbols


def test_map_scheme_is_the_more_robust_of_the_burst_and_qpsk_half() -> None:
    schemes = {m.name: burst.map_scheme(m) for m in LDPC_MCS_TABLE}
    assert schemes["ldpc-bpsk-1/4"] == burst.MapScheme("bpsk", 2) and schemes["ldpc-bpsk-1/4"].symbols == 1296
    assert schemes["ldpc-bpsk-1/2"] == burst.MapScheme("bpsk", 1)
    assert {s for n, s in schemes.items() if "bpsk" not in n} == {burst.MapScheme("qpsk", 1)}
    assert burst.MapScheme("qpsk", 1).symbols == 324
    with pytest.raises(RadioError, match="not an LDPC"):
        burst.map_scheme(by_name("qpsk-1/2"))


# ----- layout -----

def test_a_small_burst_counted_by_hand() -> None:
    layout = BurstLayout(by_name("ldpc-qpsk-1/2"), 1)
    # content 856 + 972 = 1828 symbols -> 8 periods of 252 -> 8 groups + the closing one
    assert (layout.content_symbols, layout.pilot_groups) == (1828, 9)
    assert layout.total_symbols == 256 + 1828 + 36 + 16 == 2136
    assert layout.pilot_indices()[:, 0].tolist() == [256 + 256 * g for g in range(8)] + [256 + 1828 + 32]
    assert layout.codeword_span(0) == (int(layout.content_index(856)), 256 + 1828 + 32)


@pytest.mark.parametrize("name, codewords, map_codewords", [
    ("ldpc-bpsk-1/4", 3, 2), ("ldpc-qpsk-1/2", 10, 0), ("ldpc-16qam-5/6", 7, 1), ("ldpc-256qam-5/6", 101, 3),
    ("ldpc-64qam-2/3", 0, 0),
])
def test_layout_partitions_every_symbol_exactly_once(name: str, codewords: int, map_codewords: int) -> None:
    layout = BurstLayout(by_name(name), codewords, map_codewords)
    owner = np.zeros(layout.total_symbols, np.int64)
    parts = [np.arange(PREAMBLE_SYMBOLS), layout.sig_indices(), layout.map_indices().ravel(),
             layout.codeword_indices().ravel(), layout.pilot_indices().ravel(),
             np.arange(layout.total_symbols)[layout.gap]]
    for part in parts:
        np.add.at(owner, part, 1)
    assert np.all(owner == 1)
    assert layout.total_symbols == burst.total_symbols(layout.mcs, codewords, map_codewords)
    # the content comes in order: SIG, MAP, data, each increasing
    content = np.concatenate(parts[1:4])
    assert np.all(np.diff(content) > 0) and content.size == layout.content_symbols
    # pilots: groups of 4 consecutive symbols every 256 from the SIG's start, the closing one right after the content
    pilots = layout.pilot_indices()
    assert np.all(np.diff(pilots, axis=1) == 1)
    assert np.all(np.diff(pilots[:-1, 0]) == PILOT_PERIOD) and pilots[0, 0] == PREAMBLE_SYMBOLS
    assert pilots[-1, 0] == content[-1] + 1 and pilots[-1, -1] + 1 == layout.gap.start
    assert layout.gap.stop - layout.gap.start == GAP_SYMBOLS
    assert 0 < pilots[-1, 0] - pilots[-2, 0] <= PILOT_PERIOD
    # the range form agrees with the whole-burst form
    pos, values = layout.body_pilots(0, layout.body_symbols)
    assert np.array_equal(pos + PREAMBLE_SYMBOLS, pilots.ravel())
    assert np.array_equal(values, layout.pilot_symbols().ravel())
    pos, _ = layout.body_pilots(3, 261)
    assert pos.tolist() == [3, 256, 257, 258, 259, 260][: len(pos)] and pos[0] == 3


def test_pilot_groups_are_known_bpsk_that_vary_from_group_to_group() -> None:
    groups = burst.pilot_group_symbols(np.arange(64))
    assert groups.shape == (64, PILOT_GROUP) and np.all(np.isin(groups, [1, -1]))
    signs = groups[:, 0].real
    assert 16 < np.sum(signs > 0) < 48  # pseudo-random signs: no spectral line at the pilot rate
    assert np.array_equal(groups / groups[:, :1], np.tile(burst.PILOT_PATTERN, (64, 1)))


def test_layout_refuses_impossible_bursts() -> None:
    with pytest.raises(RadioError, match="0..65535"):
        BurstLayout(by_name("ldpc-qpsk-1/2"), 1 << 16)
    with pytest.raises(RadioError, match="not an LDPC"):
        BurstLayout(by_name("bpsk-1/4"), 1)
    with pytest.raises(RadioError, match="outside"):
        BurstLayout(by_name("ldpc-qpsk-1/2"), 3).codeword_indices(2, 2)
