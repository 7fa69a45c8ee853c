"""The streaming v2 burst transmitter (radio/burst_tx.py) and RadioBackend.tx_burst on every backend."""

from __future__ import annotations

import mmap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import zmq

from radio import airtime, codeword
from radio.backends import EmulatedPluto, PlutoBackend, SimBackend, emulated_pluto_backend
from radio.backends.sigmf_io import SigmfRecorder
from radio.backends.zmq_iq import FLAG_PAUSE_AFTER, HEADER, KIND_DATA, KIND_PAUSE, ZmqTxBackend
from radio.burst import BurstLayout, decode_runs, decode_sig, preamble_symbols, run_offsets
from radio.burst_tx import (BurstPlan, CodewordRun, burst_chunks, burst_symbols_array, burst_waveform,
                            polyphase_taps)
from radio.channel import Channel
from radio.errors import BackendError, RadioError
from radio.ldpc import code as ldpc_code
from radio.link import LinkSettings
from radio.mcs import LDPC_MCS_TABLE, by_name
from radio.modulation import constellation, demap_llr
from radio.pulse import shape
from radio.transmitter import TX_POWER, TX_RMS

FS = 1.0e6
SETTINGS = LinkSettings(FS, 4, 0.15)


def payload_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def plan_of(name: str, runs: list[tuple[int, int]], size: int, flags: int = 0) -> BurstPlan:
    return BurstPlan(5, 9, by_name(name), tuple(CodewordRun(o, c) for o, c in runs), size, flags)


def small_plan(name: str = "ldpc-16qam-3/4") -> tuple[BurstPlan, bytes]:
    data = payload_bytes(6000)
    return plan_of(name, [(0, 7), (3000, 3), (100, 2)], len(data)), data


# ----- symbols: what the receiver reads back -----

@pytest.mark.parametrize("mcs", LDPC_MCS_TABLE, ids=lambda m: m.name)
def test_noiseless_symbols_demap_and_decode_to_the_plan_and_payload(mcs) -> None:
    size = codeword.bytes_per_codeword(ldpc_code(mcs.code_n, mcs.rate))
    data = payload_bytes(20 * size + 17, seed=mcs.index)
    runs = [(size * 14, 7), (3, 2), (size * 19, 1)]  # the last codeword runs past the end: zero-padded
    plan = plan_of(mcs.name, runs, len(data), flags=1)
    symbols = burst_symbols_array(plan, data, interleave_symbols=0)  # codeword by codeword (see test_interleave.py)
    layout = plan.layout
    assert symbols.shape == (layout.total_symbols,) == (airtime.burst_symbols(mcs, 10, plan.map_codewords),)
    assert np.array_equal(symbols[layout.preamble], preamble_symbols())
    assert np.array_equal(symbols[layout.pilot_indices()], layout.pilot_symbols())
    assert not np.any(symbols[layout.gap])
    assert decode_sig(4.0 * symbols[layout.sig_indices()].real) == plan.sig
    assert BurstLayout.from_sig(plan.sig) == layout
    # MAP: 648-1/2 codewords at the burst's map scheme, copies added
    scheme = layout.map_scheme
    llr = demap_llr(symbols[layout.map_indices()].ravel(), 0.05, constellation(scheme.modulation))
    result = codeword.decode(ldpc_code(648, "1/2"), llr.reshape(plan.map_codewords, scheme.repeat, 648).sum(axis=1))
    assert plan.map_codewords == 1 and result.ok.all()
    runs = decode_runs(result.data.tobytes(), plan.sig.first_offset, size, plan.sig.codewords)
    assert runs == plan.runs and np.array_equal(run_offsets(runs, size), plan.offsets())
    # data: every codeword, each of its repeats identical, decodes to its payload slice
    at = layout.codeword_indices()
    assert at.shape == (10, mcs.repeat, mcs.code_n // mcs.bits_per_symbol)
    assert np.array_equal(symbols[at], np.repeat(symbols[at][:, :1], mcs.repeat, axis=1))
    llr = demap_llr(symbols[at].ravel(), 0.05, constellation(mcs.modulation)).reshape(10, mcs.repeat, -1)
    result = codeword.decode(ldpc_code(mcs.code_n, mcs.rate), llr.sum(axis=1))
    assert result.ok.all()
    padded = data + bytes(size)
    expected = [padded[o: o + size] for o in plan.offsets().tolist()]
    assert [result.payload(i) for i in range(10)] == expected


# ----- waveform -----

@pytest.mark.parametrize("sps, rolloff", [(4, 0.15), (2, 0.35), (8, 0.1)])
def test_chunks_equal_the_one_shot_waveform_bit_for_bit(sps: int, rolloff: float) -> None:
    settings = LinkSettings(FS, sps, rolloff)
    plan, data = small_plan()
    reference = burst_waveform(plan, data, settings)
    assert reference.size == plan.samples(settings)
    for max_chunk in (sps, 100, 1001, 4096, 1 << 16):
        chunks = list(burst_chunks(plan, data, settings, max_chunk))
        full = max_chunk // sps * sps
        assert all(c.size == full for c in chunks[:-1]) and 0 < chunks[-1].size <= full
        assert np.array_equal(np.concatenate(chunks), reference)


def test_waveform_is_the_rrc_shaped_burst_at_the_v1_power_and_below_full_scale() -> None:
    plan, data = small_plan("ldpc-256qam-5/6")
    iq = burst_waveform(plan, data, SETTINGS)
    symbols = burst_symbols_array(plan, data)
    v1_style = shape(symbols, 4, 0.15) * np.float32(TX_RMS * 2.0)
    assert np.max(np.abs(iq - v1_style)) < 2e-6  # the same filter and scale, summed in float64
    body = iq[4 * 300: 4 * plan.layout.gap.start]
    assert np.mean(np.abs(body) ** 2) == pytest.approx(TX_POWER, rel=0.05)
    assert np.abs(iq).max() < 1.0


def test_no_symbol_sequence_can_reach_full_scale_at_roll_off_0_1() -> None:
    # worst case: every symbol a 256-QAM corner with the sign of the tap it meets
    corner = np.abs(constellation("256qam").levels).max() * np.sqrt(2)
    for sps in (2, 4, 8):
        assert (np.abs(polyphase_taps(sps, 0.1)).sum(axis=1) * corner).max() < 0.96


def test_peak_memory_of_a_two_second_burst_is_one_chunk_and_one_batch() -> None:
    """... plus, interleaved, one group of interleave_symbols complex64 symbols (the whole burst's samples: 16 MB)."""
    group = 8 * SETTINGS.interleave_symbols
    for name in ("ldpc-256qam-5/6", "ldpc-bpsk-1/4"):
        mcs = by_name(name)
        per = airtime.max_burst_codewords(SETTINGS, mcs, 2.0)
        data = payload_bytes(per * airtime.codeword_bytes(mcs))
        plan = plan_of(name, [(0, per)], len(data))
        next(burst_chunks(plan_of(name, [(0, 1)], 1), b"x", SETTINGS))  # compiled, caches warm
        tracemalloc.start()
        try:
            total = sum(chunk.size for chunk in burst_chunks(plan, data, SETTINGS))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert total == plan.samples(SETTINGS) and 1.9e6 < total <= 2e6
        assert peak < (4 << 20) + group, f"{name}: {peak / 2**20:.2f} MiB"


def test_payload_sources_all_give_the_same_burst(tmp_path: Path) -> None:
    plan, data = small_plan("ldpc-qpsk-5/6")
    reference = burst_waveform(plan, data, SETTINGS)

    class Reader:
        size = len(data)

        def read(self, offset: int, length: int) -> bytes:
            return data[offset: offset + length]

    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for source in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8), Reader(), mm):
            assert np.array_equal(np.concatenate(list(burst_chunks(plan, source, SETTINGS))), reference)
    with pytest.raises(RadioError, match="5999 bytes but the plan says 6000"):
        next(burst_chunks(plan, data[:-1], SETTINGS))
    with pytest.raises(RadioError, match="bytes-like"):
        next(burst_chunks(plan, 12, SETTINGS))
    with pytest.raises(RadioError, match="at least samples_per_symbol"):
        next(burst_chunks(plan, data, SETTINGS, 3))


def test_plan_checks_and_derived_values() -> None:
    plan, _ = small_plan()
    assert plan.codewords == 12
    assert plan.offsets().tolist() == [180 * i for i in range(7)] + [3000, 3180, 3360, 100, 280]
    assert plan.map_codewords == 1 and plan.sig.first_offset == 0 and plan.sig.map_codewords == 1
    assert plan_of("ldpc-qpsk-1/2", [(50, 3)], 1000).map_codewords == 0
    with pytest.raises(RadioError, match="inside the payload"):
        plan_of("ldpc-qpsk-1/2", [(0, 3)], 2 * 119)  # codeword 2 would start at byte 238 of 238
    with pytest.raises(RadioError, match="at least one run"):
        plan_of("ldpc-qpsk-1/2", [], 100)
    with pytest.raises(RadioError, match="not an LDPC"):
        plan_of("qpsk-1/2", [(0, 1)], 100)
    with pytest.raises(RadioError, match="flags"):
        plan_of("ldpc-qpsk-1/2", [(0, 1)], 100, flags=8)
    with pytest.raises(RadioError, match="at most 65535 codewords"):
        plan_of("ldpc-qpsk-1/2", [(0, 70_000)], 70_000 * 119)
    with pytest.raises(RadioError, match="255 MAP"):
        plan_of("ldpc-qpsk-1/2", [(100_000 * i, 1) for i in range(2600)], 100_000 * 2600)


# ----- backends -----

def pull_socket() -> tuple[zmq.Socket, str]:
    sock = zmq.Context.instance().socket(zmq.PULL)
    endpoint = f"inproc://burst-test-{time.monotonic_ns()}"
    sock.bind(endpoint)
    return sock, endpoint


def messages(sock: zmq.Socket) -> list[tuple[int, int, int]]:
    """(kind, flags, count) of every message waiting."""
    out = []
    while sock.poll(100):
        frames = sock.recv_multipart()
        _, _, kind, flags, _, _, _, count, _ = HEADER.unpack(frames[0])
        out.append((kind, flags, count))
    return out


def test_zmq_tx_burst_pauses_only_after_the_last_chunk() -> None:
    sock, endpoint = pull_socket()
    tx = ZmqTxBackend(endpoint, FS, chunk_samples=3000)
    plan, data = small_plan()
    sent = tx.tx_burst(burst_chunks(plan, data, SETTINGS, 4096))
    got = messages(sock)
    assert sent == plan.samples(SETTINGS) == sum(c for _, _, c in got) == tx.samples_sent
    assert len(got) > 10 and all(kind == KIND_DATA for kind, _, _ in got)
    assert [flags for _, flags, _ in got] == [0] * (len(got) - 1) + [FLAG_PAUSE_AFTER]
    tx.tx(np.full(10, 0.1, np.complex64))  # tx() still pauses after its one burst
    assert messages(sock) == [(KIND_DATA, FLAG_PAUSE_AFTER, 10)]
    tx.close(), sock.close()


def test_a_burst_cut_short_by_an_error_is_ended_and_the_error_raised() -> None:
    sock, endpoint = pull_socket()
    tx = ZmqTxBackend(endpoint, FS)

    def chunks():
        yield np.full(100, 0.1, np.complex64)
        yield np.full(100, 0.1, np.complex64)
        yield np.full(100, 2.0, np.complex64)  # beyond full scale

    with pytest.raises(BackendError, match="full scale"):
        tx.tx_burst(chunks())
    assert messages(sock) == [(KIND_DATA, 0, 100), (KIND_PAUSE, 0, 0)]  # the held chunk is dropped, then a pause
    assert tx.tx_burst([np.full(5, 0.1, np.complex64)]) == 5 and tx.tx_burst([]) == 0
    assert messages(sock) == [(KIND_DATA, FLAG_PAUSE_AFTER, 5)]
    tx.close(), sock.close()


def test_tx_chunk_keeps_bursts_whole_and_refuses_out_of_order_use() -> None:
    sock, endpoint = pull_socket()
    tx = ZmqTxBackend(endpoint, FS)
    x = np.full(50, 0.1, np.complex64)
    with pytest.raises(BackendError, match="without an open burst"):
        tx.tx_chunk(x, False, False)
    assert tx.tx_chunk(x, True, False) == 50
    with pytest.raises(BackendError, match="while a burst is open"):
        tx.tx_chunk(x, True, False)
    with pytest.raises(BackendError, match="a burst is open"):
        tx.tx(x)
    tx.tx_chunk(x, False, False)
    tx.tx_chunk(np.zeros(0, np.complex64), False, True)  # an empty last chunk ends the burst
    assert messages(sock) == [(KIND_DATA, 0, 50), (KIND_DATA, 0, 50), (KIND_PAUSE, 0, 0)]
    assert tx.samples_sent == 100
    tx.close(), sock.close()


def spy(obj: object, name: str, calls: list) -> None:
    """Record the arguments of obj.name(...) calls (lengths for arrays) and call through."""
    original = getattr(obj, name)

    def wrapper(data, *args):
        calls.append((len(data), *args))
        return original(data, *args)

    setattr(obj, name, wrapper)


def test_emulated_pluto_streams_equal_buffers_zero_padding_the_last() -> None:
    b = emulated_pluto_backend(None, idle_start_samples=0, tx_buffer_samples=1000, rx_gain_mode="manual",
                               rx_gain_db=40)
    calls: list = []
    spy(b.device, "tx_buffer", calls)
    x = np.full(2500, 0.5, np.complex64)
    assert b.tx_burst([x[:700], x[700:1000], x[1000:2300], x[2300:]]) == 2500 == b.samples_sent
    assert calls == [(1000, True, False), (1000, False, False), (1000, False, True)]
    y = b.rx(3200)
    assert np.allclose(np.abs(y[:2500]), 0.25, atol=2e-3) and np.allclose(y[2500:], 0, atol=2e-3)
    calls.clear()
    b.tx_burst([x[:1000]])  # exactly one buffer: pushed once, as first and last
    b.tx(x[:300])  # tx() keeps one buffer per burst: the TX buffer is re-created at 300
    b.tx_burst([x[:10]])  # and back at 1000
    assert calls == [(1000, True, True), (300, True, True), (1000, True, True)]
    b.close()


def test_a_real_device_gets_only_tx_buffer_samples_long_buffers() -> None:
    device = EmulatedPluto(channel=None, idle_start_samples=0)
    b = PlutoBackend("ip:192.0.2.1", device=device, stream_rx=False, tx_buffer_samples=4096)
    calls: list = []
    spy(device, "tx", calls)
    plan, data = small_plan()
    assert b.tx_burst(burst_chunks(plan, data, SETTINGS, 1000)) == plan.samples(SETTINGS)
    assert [n for n, in calls] == [4096] * -(-plan.samples(SETTINGS) // 4096)
    b.close()


def test_emulated_air_carries_a_tx_burst_as_one_burst() -> None:
    sock, endpoint = pull_socket()
    host = emulated_pluto_backend(None, air_tx=ZmqTxBackend(endpoint, FS), tx_buffer_samples=2000)
    plan, data = small_plan()
    host.tx_burst(burst_chunks(plan, data, SETTINGS, 1500))
    got = messages(sock)
    assert sum(c for _, _, c in got) == 2000 * -(-plan.samples(SETTINGS) // 2000)
    assert [flags for _, flags, _ in got] == [0] * (len(got) - 1) + [FLAG_PAUSE_AFTER]
    host.close(), sock.close()


def test_sigmf_recorder_passes_burst_chunks_through(tmp_path: Path) -> None:
    sock, endpoint = pull_socket()
    rec = SigmfRecorder(ZmqTxBackend(endpoint, FS), tmp_path / "rec")
    assert rec.tx_burst([np.full(10, 0.1, np.complex64)] * 3) == 30 == rec.samples_sent == rec.backend.samples_sent
    assert messages(sock) == [(KIND_DATA, 0, 10), (KIND_DATA, 0, 10), (KIND_DATA, FLAG_PAUSE_AFTER, 10)]
    rec.close(), sock.close()


def test_sim_backend_receives_the_chunks_back_to_back() -> None:
    sim = SimBackend(Channel("awgn", 300.0, FS, 4, TX_POWER), FS, idle_start_samples=100)
    plan, data = small_plan()
    n = sim.tx_burst(burst_chunks(plan, data, SETTINGS, 999))
    y = sim.rx(100 + n)
    assert np.allclose(y[100:], burst_waveform(plan, data, SETTINGS), atol=1e-6)
