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
