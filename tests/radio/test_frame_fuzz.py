"""Property-based fuzzing: random, truncated and bit-flipped headers and IQ streams. Only the project's own
errors may escape, and no packet with a bad CRC (or different from what was sent) is ever delivered."""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radio.errors import FrameError
from radio.frame import HEADER_BYTES, Header, parse_header
from radio.mcs import MCS_TABLE, by_name
from radio.receiver import Receiver
from radio.transmitter import TX_POWER, burst, packet_symbols
from testbed.errors import AirLoraError

FS, SPS, ROLLOFF = 1.0e6, 4, 0.25
N_MCS = len(MCS_TABLE)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

headers = st.builds(
    Header,
    mcs_index=st.integers(0, N_MCS - 1),
    session=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 1000),
    total=st.integers(1001, 2**32 - 1),
    length=st.integers(1, 65000),
)


def parse_or_frame_error(raw: bytes) -> Header | None:
    """parse_header, with FrameError (and only it) turned into None; a parsed header must re-pack to raw."""
    try:
        header = parse_header(raw, N_MCS)
    except FrameError:
        return None
    assert header.pack() == raw  # CRC-16 and every field are as received
    return header


@FUZZ
@given(st.binary(min_size=0, max_size=64))
def test_random_bytes_never_parse_into_a_header_with_a_bad_crc(raw: bytes) -> None:
    parse_or_frame_error(raw)


@FUZZ
@given(headers, st.integers(0, HEADER_BYTES - 1))
def test_truncated_headers_raise_frame_error(header: Header, keep: int) -> None:
    assert parse_or_frame_error(header.pack()[:keep]) is None
    assert parse_header(header.pack(), N_MCS) == header


@FUZZ
@given(headers, st.lists(st.integers(0, 8 * HEADER_BYTES - 1), min_size=1, max_size=3, unique=True))
def test_one_to_three_bit_flips_are_always_caught(header: Header, flips: list[int]) -> None:
    raw = bytearray(header.pack())
    for bit in flips:
        raw[bit // 8] ^= 0x80 >> (bit % 8)
    assert parse_or_frame_error(bytes(raw)) is None  # CRC-16/CCITT has Hamming distance 4 here


@FUZZ
@given(headers, st.integers(0, 2**32 - 1))
def test_many_bit_flips_give_frame_error_or_a_consistent_header(header: Header, seed: int) -> None:
    raw = np.frombuffer(header.pack(), np.uint8) ^ np.random.default_rng(seed).integers(0, 256, HEADER_BYTES,
                                                                                        dtype=np.uint8)
    parse_or_frame_error(raw.tobytes())


# --- IQ streams into the receiver ------------------------------------------------------------------

@lru_cache(maxsize=1)
def reference_burst() -> tuple[np.ndarray, dict[int, bytes]]:
    """Four packets of different MCS in one burst, and their payloads by sequence number."""
    rng = np.random.default_rng(1234)
    sent, symbols = {}, []
    for seq, (name, size) in enumerate([("bpsk-1/2", 60), ("qpsk-3/4", 150), ("16qam-3/4", 90), ("64qam-3/4", 200)]):
        mcs = by_name(name)
        payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        sent[seq] = payload
        symbols.append(packet_symbols(Header(mcs.index, 99, seq, 4, size), payload, mcs))
    iq = burst(symbols, SPS, ROLLOFF)
    return np.concatenate([np.zeros(700, np.complex64), iq, np.zeros(700, np.complex64)]), sent


def receive(stream: np.ndarray, rng: np.random.Generator) -> list:
    """Feed a stream in random chunk sizes, then flush; only AirLoraError may escape (it is re-raised)."""
    rx = Receiver(FS, SPS, ROLLOFF)
    out, i = [], 0
    try:
        while i < stream.size:
            n = int(rng.integers(1, 20000))
            out += rx.feed(stream[i:i + n])
            i += n
        out += rx.flush()
    except AirLoraError:
        return out
    return out


def check_delivered(packets: list, sent: dict[int, bytes]) -> int:
    """Every delivered payload equals what was sent for its seq (so its CRC-32 is right); count them."""
    delivered = 0
    for p in packets:
        if p.payload is None:
            continue
        assert p.header is not None and p.header.seq in sent, p
        assert p.payload == sent[p.header.seq], f"wrong payload delivered for seq {p.header.seq}"
        assert p.header.length == len(p.payload)
        assert zlib.crc32(p.payload) == zlib.crc32(sent[p.header.seq])
        delivered += 1
    return delivered


def noisy(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    var = TX_POWER * SPS / 10 ** (snr_db / 10)
    return (x + np.sqrt(var / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))).astype(
        np.complex64)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.sampled_from(["noise", "zero", "spike", "phase", "copy"]))
def test_corrupted_bursts_never_deliver_wrong_data(seed: int, n_hits: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    clean, sent = reference_burst()
    x = noisy(clean, rng, 25.0)
    for _ in range(n_hits):  # corrupt random stretches of samples
        a = int(rng.integers(0, x.size))
        b = min(x.size, a + int(rng.integers(1, 400)))
        if kind == "noise":
            x[a:b] = (rng.standard_normal(b - a) + 1j * rng.standard_normal(b - a)) * 0.5
        elif kind == "zero":
            x[a:b] = 0
        elif kind == "spike":
            x[a:b] *= rng.uniform(-50, 50)
        elif kind == "phase":
            x[a:] *= np.exp(1j * rng.uniform(0, 2 * np.pi))
        else:  # a stretch from elsewhere in the stream, like a duplicated USB buffer
            c = int(rng.integers(0, x.size - (b - a) + 1))
            x[a:b] = x[c:c + (b - a)]
    check_delivered(receive(x, rng), sent)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_truncated_streams_never_deliver_wrong_data(seed: int, start_frac: float, stop_frac: float) -> None:
    rng = np.random.default_rng(seed)
    clean, sent = reference_burst()
    x = noisy(clean, rng, 20.0)
    a, b = sorted((int(start_frac * x.size), int(stop_frac * x.size)))
    check_delivered(receive(x[a:b], rng), sent)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 60_000), st.floats(-20.0, 40.0))
def test_noise_and_random_samples_deliver_nothing(seed: int, n: int, level_db: float) -> None:
    rng = np.random.default_rng(seed)
    scale = 10 ** (level_db / 20) * np.sqrt(TX_POWER)
    kinds = [
        scale * (rng.standard_normal(n) + 1j * rng.standard_normal(n)),
        scale * np.exp(2j * np.pi * rng.random(n)),  # constant envelope, random phase
        np.tile(scale * (rng.standard_normal(32) + 1j * rng.standard_normal(32)), n // 32 + 1)[:n],  # periodic
    ]
    for x in kinds:
        assert check_delivered(receive(x.astype(np.complex64), rng), {}) == 0


@FUZZ
@given(st.integers(0, 2**32 - 1))
def test_random_chunking_of_a_clean_stream_delivers_everything(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean, sent = reference_burst()
    assert check_delivered(receive(noisy(clean, rng, 30.0), rng), sent) == len(sent)
