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


def matched_starts(packets: list, backend: SimBackend, starts: list[int]) -> int:
    """How many sent packets have a received packet (decoded or not) at their LTF start (+-2 samples)."""
    delay = backend.channel.delay_samples + filter_delay(SPS, ROLLOFF) + STF_PERIOD * STF_REPEATS * SPS
    found = np.array([p.start_sample for p in packets])
    truth = np.array(starts) + delay
    return int(sum(found.size > 0 and np.min(np.abs(found - t)) <= 2 for t in truth))


@pytest.mark.parametrize("cfo_hz", [0.0, 46e3, -46e3, 120e3, -120e3])
def test_10_db_decodes_over_plus_minus_50_ppm_of_2g4_from_an_unknown_start(cfo_hz: float) -> None:
    stream, sent, _, _ = received_stream("qpsk-1/2", 10.0, cfo_hz / FS, 8, 300, seed=23)
    rx = Receiver(FS, SPS, ROLLOFF)
    whole = rx.feed(stream) + rx.flush()
    assert {p.header.seq: p.payload for p in whole} == sent
    for p in whole:
        assert abs(p.cfo_hz - cfo_hz) < 300.0, p.cfo_hz
    assert rx.prior.hz == whole[-1].cfo_hz
    chunked = run_receiver(stream, random_chunks(stream.size, np.random.default_rng(8), 1, 9000))
    assert summary(chunked) == summary(whole)


def test_minus_2_db_detects_no_fewer_packets_than_v1_did() -> None:
    # 108 of 120 LTF starts were found by the receiver before acquisition (matched filter, no CFO search)
    found = 0
    for seed in (31, 32, 33):
        stream, _, starts, backend = received_stream("bpsk-1/4", -2.0, 0.0, 40, 60, seed=seed)
        found += matched_starts(run_receiver(stream, None), backend, starts)
    assert found >= 108


def test_max_cfo_hz_bounds_the_search() -> None:
    stream, sent, _, _ = received_stream("qpsk-1/2", 10.0, 46e3 / FS, 4, 300, seed=24)
    rx = Receiver(FS, SPS, ROLLOFF, max_cfo_hz=20e3)  # 46 kHz aliases to 14.75 kHz, never tested beyond 28 kHz
    assert [p for p in rx.feed(stream) + rx.flush() if p.header is not None] == []
    rx = Receiver(FS, SPS, ROLLOFF, max_cfo_hz=50e3)
    assert {p.header.seq: p.payload for p in rx.feed(stream) + rx.flush()} == sent


def send_one_by_one(rx: Receiver, cfo_plan_hz: list[float], seed: int, snr_db: float = 10.0,
                    mcs_name: str = "qpsk-1/2") -> tuple[list, dict[int, bytes]]:
    """One packet per CFO in the plan, the channel's CFO set before each; (received, sent)."""
    mcs = by_name(mcs_name)
    channel = Channel("awgn", snr_db, FS, SPS, TX_POWER, timing_offset_samples=321.5, seed=seed)
    backend = SimBackend(channel, FS, seed=seed)
    rng = np.random.default_rng(seed)
    sent, got = {}, []
    for seq, cfo_hz in enumerate(cfo_plan_hz):
        channel.cfo_hz = cfo_hz
        sent[seq] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
        backend.tx(burst([packet_symbols(Header(mcs.index, 1, seq, len(cfo_plan_hz), 300), sent[seq], mcs)],
                         SPS, ROLLOFF))
        got += rx.feed(backend.rx(backend.pending + 500))
    return got + rx.flush(), sent


@pytest.mark.parametrize("before_hz, after_hz", [(120e3, -120e3), (46e3, -46e3), (100e3, -20e3)])
def test_a_prior_made_wrong_by_a_cfo_step_is_replaced_at_once(before_hz: float, after_hz: float) -> None:
    rx = Receiver(FS, SPS, ROLLOFF)  # the step comes well inside the prior's 0.2 s hold
    got, sent = send_one_by_one(rx, [before_hz] * 4 + [after_hz] * 6, seed=11)
    assert {p.header.seq: p.payload for p in got if p.header is not None} == sent
    assert all(abs(p.cfo_hz - (before_hz if p.header.seq < 4 else after_hz)) < 300.0 for p in got)
    assert abs(rx.prior.hz - after_hz) < 300.0


def test_a_wrong_prior_goes_stale_and_the_wide_path_takes_over() -> None:
    # at 4 dB the prior path, derotating 240 kHz away from the signal, detects nothing
    rx = Receiver(FS, SPS, ROLLOFF, prior_hold_s=0.01)
    rx.prior.update(-120e3, 0)  # wrong, trusted for the first 10 ms of stream
    got, sent = send_one_by_one(rx, [120e3] * 8, seed=12, snr_db=4.0, mcs_name="bpsk-1/2")
    delivered = {p.header.seq: p.payload for p in got if p.payload is not None}
    assert delivered == {seq: sent[seq] for seq in range(1, 8)}  # packet 0 falls in the hold
    assert rx.packets_by_path["wide"] >= 1 and abs(rx.prior.hz - 120e3) < 300.0
