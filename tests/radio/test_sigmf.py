"""SigMF recording and replay: identical samples, a valid meta file, end-of-file handling, the factory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radio.backends import SimBackend, make_backend
from radio.backends.sigmf_io import EndOfRecording, SigmfRecorder, SigmfReplayBackend, read_meta
from radio.channel import Channel
from radio.errors import BackendError
from radio.config import ChannelConfig, RadioConfig

FS = 1.0e6


def sim() -> SimBackend:
    b = SimBackend(Channel("awgn", 15.0, FS, 4, 0.25, cfo_hz=300.0, seed=2), FS, idle_start_samples=100)
    b.tx((0.5 * np.exp(2j * np.pi * np.random.default_rng(0).random(5000))).astype(np.complex64))
    return b


def test_record_then_replay_gives_identical_samples_and_valid_meta(tmp_path: Path) -> None:
    rec = SigmfRecorder(sim(), tmp_path / "runs" / "capture", description="unit test")
    chunks = [1000, 1, 0, 4999, 3000]
    with rec:
        got = [rec.rx(n) for n in chunks]
        rec.annotate(100, 5000, "burst", comment="the transmitted burst")
    assert rec.backend.closed
    recorded = np.concatenate(got)
    meta = json.loads((tmp_path / "runs" / "capture.sigmf-meta").read_text())
    glob = meta["global"]
    assert glob["core:datatype"] == "cf32_le" and glob["core:sample_rate"] == FS
    assert glob["core:version"].startswith("1.") and glob["core:hw"] == "SimBackend"
    assert glob["core:description"] == "unit test"
    assert meta["captures"][0]["core:sample_start"] == 0
    assert meta["annotations"] == [{"core:sample_start": 100, "core:sample_count": 5000, "core:label": "burst",
                                    "core:comment": "the transmitted burst"}]
    assert (tmp_path / "runs" / "capture.sigmf-data").stat().st_size == 8 * len(recorded)

    with SigmfReplayBackend(tmp_path / "runs" / "capture.sigmf-meta", sample_rate_hz=FS) as replay:
        assert replay.total_samples == len(recorded) and replay.annotations == meta["annotations"]
        again = np.concatenate([replay.rx(n) for n in (3000, 6000)])
    assert np.array_equal(again, recorded)


def test_meta_passes_the_sigmf_schema_and_reader(tmp_path: Path) -> None:
    sigmf = pytest.importorskip("sigmf")
    from sigmf import validate

    with SigmfRecorder(sim(), tmp_path / "cap") as rec:
        y = rec.rx(2048)
    validate.validate(json.loads((tmp_path / "cap.sigmf-meta").read_text()))
    handle = sigmf.sigmffile.fromfile(str(tmp_path / "cap"))
    assert handle.get_global_field("core:sample_rate") == FS
    assert np.array_equal(handle.read_samples(), y)


def test_meta_is_readable_before_close(tmp_path: Path) -> None:
    rec = SigmfRecorder(sim(), tmp_path / "live")
    rec.rx(100)
    assert read_meta(tmp_path / "live")["global"]["core:datatype"] == "cf32_le"
    rec.close()


def test_replay_end_of_file_returns_the_remainder_then_raises(tmp_path: Path) -> None:
    with SigmfRecorder(sim(), tmp_path / "eof") as rec:
        y = rec.rx(2500)
    replay = SigmfReplayBackend(tmp_path / "eof")
    assert np.array_equal(replay.rx(2000), y[:2000])
    tail = replay.rx(1000)
    assert np.array_equal(tail, y[2000:]) and len(tail) == 500
    assert replay.samples_received == 2500 and replay.remaining == 0
    assert len(replay.rx(0)) == 0
    with pytest.raises(EndOfRecording, match="end of recording"):
        replay.rx(10)
    with pytest.raises(EOFError):
        replay.rx(10)
    looped = SigmfReplayBackend(tmp_path / "eof", loop=True)
    assert np.array_equal(looped.rx(6000), np.concatenate([y, y, y[:1000]]))


def test_replay_refuses_wrong_rate_missing_files_and_tx(tmp_path: Path) -> None:
    with SigmfRecorder(sim(), tmp_path / "r") as rec:
        rec.rx(10)
    with pytest.raises(BackendError, match="recorded at 1e\\+06 Hz but the radio runs at 2e\\+06 Hz"):
        SigmfReplayBackend(tmp_path / "r", sample_rate_hz=2e6)
    with pytest.raises(BackendError, match="cannot read"):
        SigmfReplayBackend(tmp_path / "missing")
    meta = json.loads((tmp_path / "r.sigmf-meta").read_text())
    meta["global"]["core:datatype"] = "ci16_le"
    (tmp_path / "r16.sigmf-meta").write_text(json.dumps(meta))
    with pytest.raises(BackendError, match="ci16_le"):
        SigmfReplayBackend(tmp_path / "r16")
    with SigmfReplayBackend(tmp_path / "r") as replay, pytest.raises(BackendError, match="cannot transmit"):
        replay.tx(np.zeros(4, np.complex64))


def test_factory_records_and_replays(tmp_path: Path) -> None:
    base = str(tmp_path / "factory")
    cfg = RadioConfig(backend="sim", sample_rate_hz=FS, record_sigmf=base)
    with make_backend(cfg, ChannelConfig(seed=3), 0.25) as b:
        assert isinstance(b, SigmfRecorder)
        y = b.rx(4096)
    replay_cfg = RadioConfig(backend="replay", sample_rate_hz=FS, replay_sigmf=base)
    with make_backend(replay_cfg, ChannelConfig(), 0.25, role="rx") as r:
        assert isinstance(r, SigmfReplayBackend) and np.array_equal(r.rx(4096), y)
    with pytest.raises(ValueError, match="replay_sigmf"):
        RadioConfig(backend="replay")


def test_recorder_is_transparent_to_what_a_reader_asks_of_the_backend(tmp_path: Path) -> None:
    """An edge recording its zmq cable still reads it as a cable, and the host's SNR still reaches its channel."""
    from radio.backends.zmq_iq import loopback_pair

    tx, rx = loopback_pair(FS, channel=Channel("awgn", 20.0, FS, 4, 0.25, seed=1), pause_after_tx=False)
    with tx, SigmfRecorder(rx, tmp_path / "cable") as rec:
        assert rec.cable_stream is rx and rec.channel is rx.channel
        rec.channel.set_snr_db(7.0)
        assert rx.channel.snr_db == 7.0
        tx.tx(np.full(3000, 0.5, np.complex64))
        deadline = 50
        while rec.pending < 3000 and deadline:
            rec.cable_stream.wait_cable(0.1)
            rec.cable_stream.poll_cable()
            deadline -= 1
        assert rec.pending == rx.pending >= 3000
    with SigmfRecorder(sim(), tmp_path / "sim") as plain:
        assert plain.cable_stream is None and plain.channel is not None and plain.clock_samples == 5000  # sim() sent 5000 before wrapping


# ----- the recorded waveform (airlora:* fields) and replay through the matching receiver -----

def _bursts(settings, sizes: list[int], seed: int = 7):
    """(plan, payload) pairs of one-run first-pass v2 bursts at ldpc-qpsk-1/2."""
    from radio.burst import codeword_bytes
    from radio.burst_tx import BurstPlan, CodewordRun
    from radio.mcs import by_name

    mcs = by_name("ldpc-qpsk-1/2")
    out = []
    for i, n in enumerate(sizes):
        data = np.random.default_rng(seed + i).integers(0, 256, n * codeword_bytes(mcs) - 3, np.uint8).tobytes()
        out.append((BurstPlan(11, i, mcs, (CodewordRun(0, n),), len(data)), data))
    return out


def _decode(backend, receiver, chunk: int = 50_000) -> list:
    """Feed everything the backend returns (to its end: EndOfRecording, or nothing pending) through the receiver."""
    events = []
    while True:
        try:
            n = chunk if isinstance(backend, SigmfReplayBackend) else min(chunk, backend.pending)
            if n <= 0:
                break
            events += receiver.feed(np.asarray(backend.rx(n), np.complex64))
        except EndOfRecording:
            break
    return events + receiver.flush()


def test_a_recorded_v2_delivery_replays_through_the_burst_receiver(tmp_path: Path) -> None:
    from radio.burst_events import RxCodeword
    from radio.burst_rx import BurstReceiver
    from radio.burst_tx import burst_chunks
    from radio.link import LinkSettings
    from radio.transmitter import TX_POWER

    base = str(tmp_path / "v2")
    cfg = RadioConfig(backend="sim", sample_rate_hz=FS, frame="v2", rolloff=0.15, burst_airtime_s=0.5,
                      record_sigmf=base, interleave_symbols=3000)  # codewords interleaved: the replay must know
    settings = LinkSettings.from_config(cfg)
    bursts = _bursts(settings, [6, 9])
    with make_backend(cfg, ChannelConfig(snr_db=14.0, cfo_hz=21e3, sco_ppm=15.0, seed=4), TX_POWER) as b:
        for plan, data in bursts:
            b.tx_burst(burst_chunks(plan, data, settings))
            b.tx(np.zeros(3000, np.complex64))
        b.tx(np.zeros(40_000, np.complex64))  # the receiver's tail
        live = _decode(b, BurstReceiver(FS, 4, 0.15, interleave_symbols=3000))
    glob = read_meta(base)["global"]
    assert {k: v for k, v in glob.items() if k.startswith("airlora:")} == {
        "airlora:frame_version": 2, "airlora:mcs_family": "ldpc", "airlora:rolloff": 0.15,
        "airlora:samples_per_symbol": 4, "airlora:burst_airtime_s": 0.5, "airlora:interleave_symbols": 3000}
    assert glob["core:extensions"][0]["name"] == "airlora"

    replay = make_backend(RadioConfig(backend="replay", sample_rate_hz=FS, replay_sigmf=base), ChannelConfig(),
                          TX_POWER, role="rx")
    with replay:
        receiver = replay.receiver()
        assert isinstance(receiver, BurstReceiver) and receiver.rolloff == 0.15 and receiver.interleave_symbols == 3000
        again = _decode(replay, receiver, chunk=12_345)  # another chunking than the live read

    def codewords(events) -> list[tuple[int, int, int, bytes | None]]:
        return [(c.burst, c.index, c.offset, c.data) for c in events if isinstance(c, RxCodeword)]

    assert codewords(again) == codewords(live)
    assert len(codewords(live)) == sum(plan.codewords for plan, _ in bursts) == 15
    for burst_no, index, offset, data in codewords(live):
        payload = bursts[burst_no][1]
        assert data == payload[offset: offset + len(data)]  # every codeword decoded, with the sent bytes


def test_an_old_recording_without_airlora_fields_replays_as_v1(tmp_path: Path) -> None:
    from radio.backends.sigmf_io import RecordedFrame
    from radio.receiver import Receiver

    rec = SigmfRecorder(sim(), tmp_path / "old")
    rec.rx(10)
    rec.close()
    meta = json.loads((tmp_path / "old.sigmf-meta").read_text())
    assert meta["global"]["airlora:frame_version"] == 1 and meta["global"]["airlora:mcs_family"] == "conv"
    for key in [k for k in meta["global"] if k.startswith("airlora:")] + ["core:extensions"]:
        del meta["global"][key]  # as recordings were written before the fields existed
    (tmp_path / "old.sigmf-meta").write_text(json.dumps(meta))
    with SigmfReplayBackend(tmp_path / "old") as replay:
        assert replay.frame == RecordedFrame(1, 0.25, 4, None)
        assert isinstance(replay.receiver(), Receiver)

    meta["global"].update({"airlora:frame_version": 2, "airlora:mcs_family": "conv"})
    (tmp_path / "bad.sigmf-meta").write_text(json.dumps(meta))
    (tmp_path / "bad.sigmf-data").write_bytes(b"")
    with pytest.raises(BackendError, match="airlora:mcs_family 'conv' does not go with frame v2"):
        SigmfReplayBackend(tmp_path / "bad")


def test_a_recorded_v1_packet_replays_through_the_v1_receiver(tmp_path: Path) -> None:
    from radio.link import LinkSettings, packets_burst
    from radio.mcs import MCS_TABLE
    from radio.receiver import Receiver, RxPacket
    from radio.transmitter import TX_POWER

    base = str(tmp_path / "v1")
    cfg = RadioConfig(backend="sim", sample_rate_hz=FS, record_sigmf=base, frame="v1")
    data = {0: b"airlora v1 packet " * 10, 1: b"second " * 20}
    with make_backend(cfg, ChannelConfig(snr_db=25.0, seed=2), TX_POWER) as b:
        b.tx(packets_burst(data, 2, 5, MCS_TABLE[2], LinkSettings.from_config(cfg)))
        b.tx(np.zeros(20_000, np.complex64))
        y = b.rx(b.pending)
    with SigmfReplayBackend(base) as replay:
        rx = replay.receiver()
        assert isinstance(rx, Receiver) and replay.frame.frame_version == 1
        events = rx.feed(replay.rx(len(y))) + rx.flush()
    got = {e.header.seq: e.payload for e in events if isinstance(e, RxPacket) and e.payload is not None}
    assert got == data


def test_the_recording_streams_to_disk(tmp_path: Path) -> None:
    """Recording 32 MiB of samples holds a few chunks in memory, never the recording; the data file grows as rx()
    runs."""
    import tracemalloc

    b = SimBackend(Channel("awgn", 10.0, FS, 4, 0.25, seed=1), FS, idle_start_samples=0)
    rec = SigmfRecorder(b, tmp_path / "long")
    chunk, total = 1 << 16, 1 << 22
    tracemalloc.start()
    for _ in range(total // chunk):
        rec.rx(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (tmp_path / "long.sigmf-data").stat().st_size >= 8 * (total - chunk)  # on disk before close()
    rec.close()
    assert (tmp_path / "long.sigmf-data").stat().st_size == 8 * total
    assert peak < 8 << 20, peak  # bytes; the recording is 32 MiB


def test_an_edge_recording_states_v2_once_a_v2_session_reads_it(tmp_path: Path) -> None:
    """The edge's radio.frame says nothing of what hosts send: its v2 input restates the recording's frame."""
    from edge_node.radio_input_v2 import BurstInput, ReceiverParams
    from radio.backends.sigmf_io import RecordedFrame

    rec = make_backend(RadioConfig(backend="sim", sample_rate_hz=FS, record_sigmf=str(tmp_path / "edge"), frame="v1",
                                   rolloff=0.25), ChannelConfig(), 0.25, role="rx")  # an edge configured for v1
    assert rec.frame == RecordedFrame() and read_meta(tmp_path / "edge")["global"]["airlora:frame_version"] == 1
    BurstInput(rec, ReceiverParams(FS, 4, 0.15))
    assert read_meta(tmp_path / "edge")["global"]["airlora:frame_version"] == 2  # rewritten at once
    rec.rx(1000)
    rec.close()
    with SigmfReplayBackend(tmp_path / "edge") as replay:
        assert replay.frame == RecordedFrame(2, 0.15, 4, None)
        assert type(replay.receiver()).__name__ == "BurstReceiver"
