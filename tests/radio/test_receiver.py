"""The streaming receiver end to end through SimBackend: every packet, right payloads, any chunking,
timing offset with a fractional delay, CFO of +-1% of the sample rate, high and low SNR."""

from __future__ import annotations

import numpy as np
import pytest

from radio.backends.sim import SimBackend
from radio.channel import Channel
from radio.errors import RadioError
from radio.frame import Header
from radio.mcs import by_name
from radio.preamble import STF_PERIOD, STF_REPEATS
from radio.pulse import filter_delay
from radio.receiver import Receiver
from radio.transmitter import TX_POWER, burst, packet_symbols

FS, SPS, ROLLOFF = 1.0e6, 4, 0.25


def received_stream(mcs_name: str, snr_db: float, cfo_frac: float, n_packets: int, payload_bytes: int,
                    seed: int, per_burst: int = 4) -> tuple[np.ndarray, dict[int, bytes], list[int], SimBackend]:
    """The receive stream of n_packets sent in bursts; (stream, payload by seq, burst start samples, backend)."""
    mcs = by_name(mcs_name)
    channel = Channel("awgn", snr_db, FS, SPS, TX_POWER, cfo_hz=cfo_frac * FS,
                      timing_offset_samples=1234.37, seed=seed)
    backend = SimBackend(channel, FS, seed=seed)
    rng = np.random.default_rng(seed)
    sent, starts, parts, position = {}, [], [], backend.idle_start_samples
    for first in range(0, n_packets, per_burst):
        symbols = []
        for seq in range(first, min(first + per_burst, n_packets)):
            size = int(rng.integers(payload_bytes // 2, payload_bytes + 1))
            sent[seq] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            symbols.append(packet_symbols(Header(mcs.index, 7, seq, n_packets, size), sent[seq], mcs))
            starts.append(position + sum(s.size for s in symbols[:-1]) * SPS + 16 * SPS * (len(symbols) - 1))
        iq = burst(symbols, SPS, ROLLOFF)
        backend.tx(iq)
        gap = int(rng.integers(0, 3000))
        parts.append(backend.rx(backend.pending + gap))
        position += iq.size + gap
    parts.append(backend.rx(2000))
    return np.concatenate(parts), sent, starts, backend


def run_receiver(stream: np.ndarray, chunks: list[int] | None) -> list:
    rx = Receiver(FS, SPS, ROLLOFF)
    if chunks is None:
        return rx.feed(stream) + rx.flush()
    out, i = [], 0
    for n in chunks:
        out += rx.feed(stream[i:i + n])
        i += n
    out += rx.feed(stream[i:])
    return out + rx.flush()


def random_chunks(total: int, rng: np.random.Generator, low: int = 1, high: int = 50_000) -> list[int]:
    chunks = []
    while sum(chunks) < total:
        chunks.append(int(rng.integers(low, high)))
    return chunks


def summary(packets: list) -> list[tuple]:
    return [(p.start_sample, p.header, p.payload, round(p.snr_db, 3), round(p.cfo_hz, 1)) for p in packets]


@pytest.mark.parametrize("cfo_frac", [0.01, -0.01])
def test_64qam_3_4_at_25_db_delivers_every_packet_in_any_chunking(cfo_frac: float) -> None:
    stream, sent, starts, backend = received_stream("64qam-3/4", 25.0, cfo_frac, 12, 600, seed=21)
    whole = run_receiver(stream, None)
    assert [p.header.seq for p in whole] == list(range(12))
    assert all(p.payload == sent[p.header.seq] for p in whole)
    for p in whole:
        assert abs(p.cfo_hz - cfo_frac * FS) < 50.0  # 0.005% of fs, from a 1% offset
        assert abs(p.snr_db - 25.0) < 1.5
    # the LTF starts STF_PERIOD * STF_REPEATS symbols after the packet, plus the RRC and channel delays
    delay = backend.channel.delay_samples + filter_delay(SPS, ROLLOFF) + STF_PERIOD * STF_REPEATS * SPS
    offsets = np.array([p.start_sample for p in whole]) - (np.array(starts) + delay)
    assert np.all(np.abs(offsets) <= 1.0), offsets
    rng = np.random.default_rng(5)
    for chunks in (random_chunks(stream.size, rng), random_chunks(stream.size, rng, 1, 700), [4096] * 400):
        assert summary(run_receiver(stream, chunks)) == summary(whole)


@pytest.mark.parametrize("cfo_frac", [0.01, -0.01])
def test_bpsk_1_4_at_0_db_loses_at_most_a_few_and_never_delivers_wrong_data(cfo_frac: float) -> None:
    stream, sent, _, _ = received_stream("bpsk-1/4", 0.0, cfo_frac, 16, 300, seed=22)
    whole = run_receiver(stream, None)
    delivered = {p.header.seq: p.payload for p in whole if p.payload is not None}
    assert all(payload == sent[seq] for seq, payload in delivered.items())
    assert len(delivered) >= 14, f"only {sorted(delivered)} of 16 delivered at 0 dB"
    chunked = run_receiver(stream, random_chunks(stream.size, np.random.default_rng(9)))
    assert summary(chunked) == summary(whole)


def test_mixed_mcs_and_idle_noise_between_bursts() -> None:
    channel = Channel("awgn", 22.0, FS, SPS, TX_POWER, cfo_hz=-3000.0, timing_offset_samples=17.6, seed=3)
    backend = SimBackend(channel, FS, seed=3)
    rx = Receiver(FS, SPS, ROLLOFF)
    rng = np.random.default_rng(3)
    sent, got = {}, []
    names = ["bpsk-1/4", "bpsk-1/2", "qpsk-1/2", "qpsk-3/4", "16qam-1/2", "16qam-3/4", "64qam-2/3", "64qam-3/4"]
    for seq, name in enumerate(names):
        mcs = by_name(name)
        sent[seq] = rng.integers(0, 256, 333, dtype=np.uint8).tobytes()
        backend.tx(burst([packet_symbols(Header(mcs.index, 1, seq, len(names), 333), sent[seq], mcs)], SPS, ROLLOFF))
        got += rx.feed(backend.rx(backend.pending + int(rng.integers(0, 20_000))))
    got += rx.flush()
    assert {p.header.seq: p.payload for p in got} == sent
    assert [p.header.mcs_index for p in got] == [by_name(n).index for n in names]


def test_silence_and_noise_only_give_no_packets() -> None:
    rx = Receiver(FS, SPS, ROLLOFF)
    assert rx.feed(np.zeros(50_000, np.complex64)) == [] and rx.flush() == []
    noise = Channel("awgn", 0.0, FS, SPS, TX_POWER, seed=1).apply(np.zeros(300_000, np.complex64))
    rx = Receiver(FS, SPS, ROLLOFF)
    assert [p for p in rx.feed(noise) + rx.flush() if p.payload is not None] == []


def test_non_finite_samples_cost_only_their_packet() -> None:
    stream, sent, _, _ = received_stream("qpsk-1/2", 25.0, 0.0, 4, 200, seed=4)
    stream[len(stream) // 3] = np.nan
    stream[len(stream) // 2] = np.inf
    rx = Receiver(FS, SPS, ROLLOFF)
    out = rx.feed(stream) + rx.flush()
    assert rx.non_finite_samples == 2
    good = [p for p in out if p.payload is not None]
    assert all(p.payload == sent[p.header.seq] for p in good)
    assert len(good) >= len(sent) - 2
