"""The ZeroMQ IQ cable: order, no drops under backpressure, idle silence, SNR schedule, malformed messages, rates."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from radio.backends import make_backend
from radio.backends.zmq_iq import (
    FLAG_PAUSE_AFTER,
    KIND_DATA,
    KIND_IDLE,
    ZmqRxBackend,
    ZmqTxBackend,
    loopback_pair,
    pack_header,
)
from radio.channel import Channel, ScheduledChannel
from radio.errors import BackendError
from radio.config import ChannelConfig, RadioConfig

FS = 1.0e6


def samples(n: int, seed: int = 0) -> np.ndarray:
    """Constant-modulus random samples (never zero, so silence is told apart exactly)."""
    return (0.5 * np.exp(2j * np.pi * np.random.default_rng(seed).random(n))).astype(np.complex64)


def read_until(rx: ZmqRxBackend, total_after_anchor: int, chunk: int = 50_000, deadline_s: float = 20.0) -> np.ndarray:
    """rx() in chunks until total_after_anchor samples past the first placement are in."""
    out, got, t0 = [], 0, time.monotonic()
    while not rx.placements or got < rx.placements[0][2] + total_after_anchor:
        assert time.monotonic() - t0 < deadline_s, "transmitter never arrived"
        out.append(rx.rx(chunk))
        got += chunk
    return np.concatenate(out)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:*", "inproc://zmq-test-burst"])
def test_burst_over_a_million_samples_arrives_in_order_and_complete(endpoint: str) -> None:
    tx, rx = loopback_pair(FS, endpoint=endpoint, pause_after_tx=False, hwm_messages=2)
    x = samples(1_300_000)
    sizes = [1, 999, 70_000, 229_000, 1_000_000]  # chunked, odd sizes, one call above 1M

    def send() -> None:
        i = 0
        for n in sizes:
            tx.tx(x[i:i + n])
            i += n
        tx.pause()

    with tx, rx:
        thread = threading.Thread(target=send)
        thread.start()
        y = read_until(rx, len(x) + 5000, chunk=65_536)
        thread.join(10)
        start = rx.placements[0][2]
        assert len(rx.placements) == 1 and rx.placements[0][1] == 0
        assert np.array_equal(y[start:start + len(x)], x)
        assert not np.any(y[:start]) and not np.any(y[start + len(x):])
        assert rx.malformed_messages == 0 and rx.lost_samples == 0
        assert tx.clock_samples == tx.samples_sent == len(x)


def test_declared_idle_is_exact_silence_between_bursts() -> None:
    tx, rx = loopback_pair(FS, pause_after_tx=False)
    a, b = samples(3000, 1), samples(2000, 2)
    with tx, rx:
        tx.tx(a)
        tx.idle(1234)
        tx.tx(b)
        tx.pause()
        y = read_until(rx, 3000 + 1234 + 2000 + 10, chunk=1000)
        s = rx.placements[0][2]
        assert np.array_equal(y[s:s + 3000], a)
        assert not np.any(y[s + 3000:s + 4234])
        assert np.array_equal(y[s + 4234:s + 6234], b)
        assert tx.clock_samples == 6234


def test_idle_stream_is_channel_noise_and_does_not_block() -> None:
    ch = Channel("awgn", 10.0, FS, 4, 0.25, seed=3)
    rx = ZmqRxBackend("inproc://zmq-test-noise", FS, ch, timeout_s=5.0)
    with rx:
        t0 = time.monotonic()
        y = rx.rx(300_000)
        assert time.monotonic() - t0 < 2.0  # no transmitter heard: silence at once, no waiting
        assert np.mean(np.abs(y) ** 2) == pytest.approx(ch.noise_variance, rel=0.02)


def test_pause_after_tx_lets_the_receiver_run_ahead_and_places_the_next_burst_where_it_is() -> None:
    tx, rx = loopback_pair(FS, timeout_s=5.0)  # pause_after_tx=True, like sim
    a, b = samples(4000, 1), samples(4000, 2)
    with tx, rx:
        tx.tx(a)
        y1 = read_until(rx, 4000 + 20_000, chunk=1000)
        t0 = time.monotonic()
        y1 = np.concatenate([y1, rx.rx(50_000)])  # transmitter idle: returns at once
        assert time.monotonic() - t0 < 1.0 and not rx.tx_active
        tx.tx(b)
        time.sleep(0.05)
        y2 = rx.rx(10_000)
        (sid, t_a, r_a), (sid2, t_b, r_b) = rx.placements
        assert sid == sid2 == tx.stream_id and (t_a, t_b) == (0, 4000)
        assert r_b == len(y1)  # the second burst starts where the receiver was
        assert np.array_equal(y1[r_a:r_a + 4000], a) and not np.any(y1[r_a + 4000:])
        assert np.array_equal(y2[:4000], b)


def test_active_transmitter_blocks_rx_until_samples_come() -> None:
    tx, rx = loopback_pair(FS, timeout_s=5.0, pause_after_tx=False)
    a, b = samples(5000, 1), samples(5000, 2)
    with tx, rx:
        tx.tx(a)
        read_until(rx, 0, chunk=1)  # anchor on the first sample
        timer = threading.Timer(0.2, lambda: tx.tx(b))
        timer.start()
        t0 = time.monotonic()
        y = rx.rx(9999)  # 1 already read; needs b, which comes 0.2 s later
        assert 0.15 < time.monotonic() - t0 < 4.0
        assert np.array_equal(np.concatenate([a, b])[1:10_000], y)
        timer.join()


def test_active_transmitter_that_stalls_is_treated_as_idle_after_the_timeout() -> None:
    tx, rx = loopback_pair(FS, timeout_s=0.2, pause_after_tx=False)
    a = samples(3000)
    with tx, rx:
        tx.tx(a)
        read_until(rx, 0, chunk=1)
        t0 = time.monotonic()
        y = rx.rx(3999)
        assert 0.15 < time.monotonic() - t0 < 2.0
        assert np.array_equal(y[:2999], a[1:]) and not np.any(y[2999:]) and not rx.tx_active


def test_snr_schedule_changes_the_noise_at_the_scheduled_sample() -> None:
    steps = [{"at_s": 0.01, "snr_db": 0.0}, {"at_s": 0.03, "snr_db": 20.0}]
    cfg = ChannelConfig(snr_db=40.0, seed=4, snr_schedule=steps)

    def run(chunks: list[int]) -> np.ndarray:
        endpoint = f"inproc://zmq-test-snr-{len(chunks)}"  # a closed inproc name is released asynchronously
        radio_cfg = RadioConfig(backend="zmq", sample_rate_hz=FS, zmq={"bind_endpoint": endpoint})
        rx = make_backend(radio_cfg, cfg, 0.25, role="rx")
        with rx:
            return np.concatenate([rx.rx(n) for n in chunks])

    y = run([40_000])
    assert np.array_equal(y, run([9999, 2, 19_000, 10_999]))  # chunking does not move the steps
    power = np.abs(y) ** 2
    var = {snr: 0.25 * 4 / 10 ** (snr / 10) for snr in (40.0, 0.0, 20.0)}
    assert power[:10_000].mean() == pytest.approx(var[40.0], rel=0.05)
    assert power[10_000:30_000].mean() == pytest.approx(var[0.0], rel=0.05)
    assert power[30_000:].mean() == pytest.approx(var[20.0], rel=0.05)
    assert power[9_990:10_000].max() < 0.01 * var[0.0]  # the step is at sample 10000 exactly
    assert power[10_000:10_010].max() > 0.01 * var[0.0]


def test_scheduled_channel_refuses_unordered_steps() -> None:
    with pytest.raises(BackendError, match="increasing"):
        ScheduledChannel(Channel("awgn", 10.0, FS, 4, 0.25), [(100, 1.0), (100, 2.0)])
    with pytest.raises(ValueError, match="increasing"):
        ChannelConfig(snr_schedule=[{"at_s": 1.0, "snr_db": 1.0}, {"at_s": 0.5, "snr_db": 2.0}])


def test_malformed_messages_are_dropped_and_the_stream_continues() -> None:
    rx = ZmqRxBackend("tcp://127.0.0.1:*", FS, None, timeout_s=2.0)
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUSH)
    raw.connect(rx.endpoint)
    sid = 0xABCD
    good = samples(1000, 5)
    bad_nan = good.copy()
    bad_nan[3] = np.nan
    raw.send_multipart([pack_header(KIND_DATA, sid, 0, 1000, FS), good.tobytes()])
    raw.send(b"hello")  # short header
    raw.send_multipart([b"XXXX" + pack_header(KIND_DATA, sid, 1000, 10, FS)[4:], good[:10].tobytes()])  # magic
    raw.send_multipart([pack_header(KIND_DATA, sid, 1000, 1000, FS), good[:999].tobytes()])  # length
    raw.send_multipart([pack_header(KIND_DATA, sid, 1000, 1000, FS), bad_nan.tobytes()])  # NaN: lost
    raw.send_multipart([pack_header(7, sid, 2000, 0, FS)])  # unknown kind
    raw.send_multipart([pack_header(KIND_IDLE, sid, 2000, 0, FS)])  # empty idle
    raw.send_multipart([pack_header(KIND_DATA, sid, 0, 5, FS), good[:5].tobytes()])  # goes back in time
    raw.send_multipart([pack_header(KIND_DATA, sid, 2000, 1000, FS, FLAG_PAUSE_AFTER), good.tobytes()])
    with rx:
        y = read_until(rx, 3100, chunk=500)
        s = rx.placements[0][2]
        assert np.array_equal(y[s:s + 1000], good)
        assert not np.any(y[s + 1000:s + 2000])  # the lost message's samples are silence
        assert np.array_equal(y[s + 2000:s + 3000], good)
        assert rx.malformed_messages == 7 and rx.lost_samples == 1000
    raw.close(linger=0)


def test_sample_rate_mismatch_is_refused_with_both_rates() -> None:
    rx = ZmqRxBackend("inproc://zmq-test-rate", FS, None, timeout_s=1.0)
    wrong = ZmqTxBackend(rx.endpoint, 2.0e6)
    right = ZmqTxBackend(rx.endpoint, FS)
    with rx, wrong, right:
        wrong.tx(samples(100))
        time.sleep(0.05)
        with pytest.raises(BackendError, match="transmitter runs at 2e\\+06 Hz but this receiver at 1e\\+06 Hz"):
            rx.rx(1000)
        right.tx(samples(100, 1))
        y = read_until(rx, 100, chunk=100)
        assert np.array_equal(y[rx.placements[0][2]:][:100], samples(100, 1))


def test_one_way_ends_refuse_the_other_direction_and_full_queue_times_out() -> None:
    tx = ZmqTxBackend("tcp://127.0.0.1:1", FS, hwm_messages=1, send_timeout_s=0.2, chunk_samples=100, linger_s=0)
    rx = ZmqRxBackend("inproc://zmq-test-oneway", FS)
    with tx, rx:
        with pytest.raises(BackendError, match="transmit side"):
            tx.rx(10)
        with pytest.raises(BackendError, match="receive side"):
            rx.tx(samples(10))
        with pytest.raises(BackendError, match="not drained"):
            tx.tx(samples(10_000))  # nobody listens on port 1: the queue fills, tx() gives up


def test_factory_builds_both_ends_and_checks_role() -> None:
    cfg = RadioConfig(backend="zmq", sample_rate_hz=FS, zmq={"bind_endpoint": "tcp://127.0.0.1:*"})
    rx = make_backend(cfg, ChannelConfig(snr_db=30.0), 0.25, role="rx")
    assert isinstance(rx, ZmqRxBackend) and isinstance(rx.channel, Channel)
    tx_cfg = cfg.model_copy(update={"zmq": cfg.zmq.model_copy(update={"endpoint": rx.endpoint})})
    tx = make_backend(tx_cfg, ChannelConfig(), 0.25, role="tx")
    with rx, tx:
        assert isinstance(tx, ZmqTxBackend)
        tx.tx(samples(500))
        y = read_until(rx, 500, chunk=500)
        assert np.allclose(y[rx.placements[0][2]:][:500], samples(500), atol=0.15)  # 30 dB: noise std 0.03
    with pytest.raises(BackendError, match="role"):
        make_backend(cfg, ChannelConfig(), 0.25, role="edge")
    with pytest.raises(ValueError):
        RadioConfig(zmq={"endpoint": "http://x"})
    with pytest.raises(ValueError):
        RadioConfig(zmq={"port": 5})


def test_realtime_idle_paces_silence_and_a_burst_cuts_in() -> None:
    tx, rx = loopback_pair(FS, timeout_s=2.0, realtime_idle=True)
    with tx, rx:
        timer = threading.Timer(0.1, lambda: tx.tx(samples(1000)))
        timer.start()
        t0 = time.monotonic()
        y = rx.rx(300_000)
        assert 0.25 < time.monotonic() - t0 < 1.5  # 0.3 s of stream at 1 MS/s
        assert rx.placements[0][2] == 0 and np.array_equal(y[:1000], samples(1000))
        timer.join()


# --- a stranger on the cable (issue 11): declared silence, floods, log lines, CurveZMQ ------------------------------

def test_a_long_idle_or_a_far_jump_is_refused_not_waited_out() -> None:
    rx = ZmqRxBackend("tcp://127.0.0.1:*", FS, None, timeout_s=2.0, max_gap_samples=10_000)
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.connect(rx.endpoint)
    sid, good = 0x1D1E, samples(1000, 7)
    raw.send_multipart([pack_header(KIND_DATA, sid, 0, 1000, FS), good.tobytes()])
    raw.send_multipart([pack_header(KIND_IDLE, sid, 1000, 1 << 40, FS)])  # 12 days of silence at 1 MS/s
    raw.send_multipart([pack_header(KIND_DATA, sid, 1 << 50, 1000, FS), good.tobytes()])  # a jump far ahead
    raw.send_multipart([pack_header(KIND_IDLE, sid, 1000, 10_000, FS)])  # at the limit: taken
    raw.send_multipart([pack_header(KIND_DATA, sid, 11_000, 1000, FS, FLAG_PAUSE_AFTER), good.tobytes()])
    with rx:
        t0 = time.monotonic()
        deadline = t0 + 5
        while rx.tx_clock_received < 12_000 and time.monotonic() < deadline:
            rx.wait_cable(0.05)
        assert time.monotonic() - t0 < 2.0
        assert rx.malformed_messages == 2 and rx.tx_clock_received == 12_000
        assert rx.pending == 12_000  # the accepted silence only: nothing of the refused 2**40
        y = rx.rx(rx.pending)
        assert np.array_equal(y[:1000], good) and not np.any(y[1000:11_000]) and np.array_equal(y[11_000:], good)
    raw.close(linger=0)
    with pytest.raises(BackendError, match="max_gap_samples"):
        ZmqRxBackend("inproc://zmq-test-gap", FS, max_gap_samples=0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_a_flood_is_held_to_the_intake_window_and_pushed_back() -> None:
    window, chunk = 1 << 16, 1 << 15
    rx = ZmqRxBackend("tcp://127.0.0.1:*", FS, None, window_samples=window, hwm_messages=4)
    flood = ZmqTxBackend(rx.endpoint, FS, hwm_messages=4, send_timeout_s=0.3, chunk_samples=chunk, linger_s=0,
                         pause_after_tx=False)
    block = samples(chunk, 3)
    sent, rss0 = 0, _rss_bytes()
    with rx, flood:
        try:
            for _ in range(2048):  # 512 MiB if nothing pushed back
                flood.tx(block)
                sent += 1
                rx.poll_cable()  # what the edge does each step while its decoder is busy
                assert rx.pending <= window + chunk
        except BackendError as exc:
            assert "not drained" in str(exc)
        for _ in range(20):
            rx.poll_cable()
            rx.wait_cable(0.01)
        assert rx.pending <= window + chunk
        assert sent < 128  # the cable pushed back: the flooder blocked within a few MiB, not 512
        assert _rss_bytes() - rss0 < 64 << 20
        # what was taken in is intact and in order: the edge reads it, then the cable flows again
        assert np.array_equal(rx.rx(chunk), block)


def test_a_flood_of_bad_messages_writes_a_bounded_number_of_log_lines(caplog) -> None:
    rx = ZmqRxBackend("tcp://127.0.0.1:*", FS, None)
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.connect(rx.endpoint)
    with rx, caplog.at_level("WARNING", logger="radio.backends.zmq_iq"):
        for _ in range(5000):
            raw.send(b"x")  # one byte: a header of the wrong size
        deadline = time.monotonic() + 10
        while rx.malformed_messages < 5000 and time.monotonic() < deadline:
            rx.poll_cable(1000)
            rx.wait_cable(0.01)
        assert rx.malformed_messages == 5000
        lines = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert 1 <= len(lines) <= 20
        time.sleep(0.6)  # the bucket refills: the next line says how many were left out
        raw.send(b"x")
        while rx.malformed_messages < 5001 and time.monotonic() < deadline:
            rx.wait_cable(0.05)
        assert "similar messages suppressed" in caplog.records[-1].getMessage()
    raw.close(linger=0)


def _curve_pair() -> tuple[bytes, bytes]:
    public, secret = zmq.curve_keypair()
    return public, secret


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CurveZMQ")
def test_curve_on_the_cable_lets_in_only_authorized_transmitters() -> None:
    from radio.backends.zmq_iq import CableCurve

    edge, host, stranger = _curve_pair(), _curve_pair(), _curve_pair()
    rx = ZmqRxBackend("tcp://127.0.0.1:*", FS, None,
                      curve=CableCurve(*edge, authorized=frozenset({host[0]})))
    good = ZmqTxBackend(rx.endpoint, FS, curve=CableCurve(*host, server_public=edge[0]), linger_s=0)
    outsiders = [ZmqTxBackend(rx.endpoint, FS, curve=CableCurve(*stranger, server_public=edge[0]), linger_s=0,
                              send_timeout_s=0.5, hwm_messages=1, chunk_samples=100),
                 ZmqTxBackend(rx.endpoint, FS, linger_s=0, send_timeout_s=0.5, hwm_messages=1, chunk_samples=100)]
    with rx, good:
        for outsider in outsiders:  # an unknown key, and no CurveZMQ at all: never connected, nothing arrives
            with outsider, pytest.raises(BackendError, match="not drained"):
                outsider.tx(samples(1000))
        assert rx.pending == 0 and rx.malformed_messages == 0 and not rx.wait_cable(0.2)
        good.tx(samples(500, 2))
        y = read_until(rx, 500, chunk=500)
        assert np.array_equal(y[rx.placements[0][2]:][:500], samples(500, 2))
        assert len(rx.placements) == 1  # only the authorized transmitter's stream was ever seen
    with pytest.raises(BackendError, match="tcp:// or ipc://"):
        ZmqRxBackend("inproc://zmq-test-curve", FS, curve=CableCurve(*edge))
    with pytest.raises(BackendError, match="receiver's public key"):
        ZmqTxBackend("tcp://127.0.0.1:1", FS, curve=CableCurve(*host))


def test_the_transmitter_holds_no_reference_to_samples_it_queued() -> None:
    """What tx() queued is libzmq's copy: the caller's array is freed at once, even while the message waits on a
    cable nobody drains, so the IQ a host holds is bounded by the high-water mark (issue 16)."""
    import gc
    import weakref

    tx = ZmqTxBackend("tcp://127.0.0.1:1", FS, hwm_messages=4, send_timeout_s=0.2, chunk_samples=1 << 15, linger_s=0)
    with tx:
        block = samples(1 << 15, 4)
        alive = weakref.ref(block)
        tx.tx_chunk(block, True, False)  # queued: nobody listens on port 1
        del block
        gc.collect()
        assert alive() is None
        with pytest.raises(BackendError, match="not drained"):
            for _ in range(8):  # and the queue is bounded: tx() blocks, then gives up, at the high-water mark
                tx.tx_chunk(samples(1 << 15), False, False)
