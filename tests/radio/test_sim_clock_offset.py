"""Backends with a sample clock offset: reading `pending` samples while a burst streams in never pads silence
into it (sim, the in-process ZeroMQ cable, the emulated Pluto; Channel.output_samples_for)."""

from __future__ import annotations

import numpy as np
import pytest

from radio.backends.sim import SimBackend
from radio.channel import Channel

FS = 1.0e6


def channel(sco_ppm: float) -> Channel:
    return Channel("awgn", 200.0, FS, 4, 1.0, sco_ppm=sco_ppm, seed=3)


@pytest.mark.parametrize("sco_ppm", [-50.0, 0.0, 20.0, 50.0])
def test_output_samples_for_inverts_input_samples_for(sco_ppm: float) -> None:
    ch = channel(sco_ppm)
    ch.apply(np.ones(12345, np.complex64))  # some state: held input, a moved time pointer
    for n in (0, 1, 100, 65536, 1_000_000):
        m = ch.output_samples_for(n)
        assert ch.input_samples_for(m) <= n < ch.input_samples_for(m + 1) or (m == n == 0)
        assert abs(m - n / (1 + sco_ppm * 1e-6)) < 20


@pytest.mark.parametrize("sco_ppm", [20.0, 50.0])
def test_chunked_tx_and_pending_reads_equal_one_shot(sco_ppm: float) -> None:
    """A burst sent in 65536-sample chunks, `pending` read after each: the stream equals the channel applied to
    the whole burst at once (before the fix 50 ppm inserted 3 zeros per chunk, and 20 ppm cost 40 % goodput)."""
    x = np.exp(2j * np.pi * 0.01 * np.arange(300_000)).astype(np.complex64)
    sim = SimBackend(channel(sco_ppm), FS, idle_start_samples=0)
    got = []
    for i in range(0, x.size, 65536):
        sim.tx(x[i:i + 65536])
        got.append(sim.rx(sim.pending))
    got = np.concatenate(got)
    ref = channel(sco_ppm).apply(x)
    assert ref.size - got.size <= 16
    np.testing.assert_allclose(got, ref[:got.size], atol=1e-5)


def _chunked_pending_reads(tx, rx, x: np.ndarray, poll) -> np.ndarray:
    got = []
    for i in range(0, x.size, 65536):
        tx.tx(x[i:i + 65536])
        poll()
        got.append(rx.rx(rx.pending))
    return np.concatenate(got)


@pytest.mark.parametrize("sco_ppm", [-50.0, 50.0])
def test_zmq_loopback_pending_reads_equal_one_shot(sco_ppm: float) -> None:
    """The same over the in-process ZeroMQ cable (before: +50 ppm made every read wait out the cable's timeout
    and pad silence; `airlora link --backend zmq --sco-ppm 50` took 276 s for 1.4 s of air and 4 % of Shannon)."""
    from radio.backends.zmq_iq import loopback_pair

    x = np.exp(2j * np.pi * 0.01 * np.arange(200_000)).astype(np.complex64)
    tx, rx = loopback_pair(FS, channel(sco_ppm), timeout_s=5.0)
    try:
        def poll() -> None:
            while rx.poll_cable():
                pass

        got = _chunked_pending_reads(tx, rx, x, poll)
    finally:
        tx.close()
        rx.close()
    ref = channel(sco_ppm).apply(x)
    assert ref.size - got.size <= 16
    np.testing.assert_allclose(got, ref[:got.size], atol=1e-5)


@pytest.mark.parametrize("sco_ppm", [-25.0, 25.0])
def test_emulated_pluto_pending_reads_whole_buffers_without_silence(sco_ppm: float) -> None:
    """The emulated Pluto returns whole RX buffers: with a clock offset `pending` is rounded down to them, so no
    read reaches past what the queue completes (before: an emulated pair 25 ppm apart got 2-28 % of Shannon)."""
    from radio.backends.pluto_emulator import emulated_pluto_backend

    x = np.exp(2j * np.pi * 0.01 * np.arange(200_000)).astype(np.complex64) * 0.5
    b = emulated_pluto_backend(channel(sco_ppm), idle_start_samples=0, rx_gain_mode="manual", rx_gain_db=40)
    got = _chunked_pending_reads(b, b, x, lambda: None)
    b.close()
    ref = channel(sco_ppm).apply(x)
    assert x.size - 2 * 65536 < got.size <= ref.size
    gain = np.vdot(ref[:got.size], got) / np.vdot(ref[:got.size], ref[:got.size])
    np.testing.assert_allclose(got, gain * ref[:got.size], atol=0.02 * abs(gain))  # ADC rounding only
