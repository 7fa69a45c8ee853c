"""BroadcastTx: every cable carries the same samples on one clock, and a dead receiver does not hold the others."""

from __future__ import annotations

import time

import numpy as np

from radio.backends.broadcast import BroadcastTx
from radio.backends.zmq_iq import ZmqRxBackend


def _rx(port: str = "*") -> ZmqRxBackend:
    return ZmqRxBackend(f"tcp://127.0.0.1:{port}", 1e6, None, bind=True, timeout_s=1.0)


def _take(rx: ZmqRxBackend, n: int) -> np.ndarray:
    """n samples once the cable has delivered them (a receiver that never heard the transmitter idles)."""
    deadline = time.monotonic() + 5.0
    while rx.pending < n and time.monotonic() < deadline:
        rx.wait_cable(0.2)
    return rx.rx(n)


def test_every_receiver_gets_the_same_samples():
    a, b = _rx(), _rx()
    tx = BroadcastTx([a.endpoint, b.endpoint], 1e6, chunk_samples=1000)
    try:
        iq = (np.random.default_rng(0).standard_normal(5500) * 0.1).astype(np.complex64)
        tx.tx(iq)
        assert tx.clock_samples == 5500
        for rx in (a, b):
            assert np.array_equal(_take(rx, 5500), iq)
        assert tx.drops() == {a.endpoint: 0, b.endpoint: 0}
    finally:
        tx.close()
        a.close()
        b.close()


def test_a_dead_receiver_costs_one_lag_timeout_then_loses_samples_while_the_live_one_gets_all():
    live = _rx()
    dead = _rx()
    dead_endpoint = dead.endpoint
    dead.close()  # nobody reads this cable any more: its queue fills
    tx = BroadcastTx([live.endpoint, dead_endpoint], 1e6, chunk_samples=1000, lag_timeout_s=0.3, hwm_messages=2)
    try:
        iq = np.full(60_000, 0.5, np.complex64)
        t0 = time.monotonic()
        got = []
        for _ in range(3):
            tx.tx(iq)
            got.append(_take(live, 60_000))
        elapsed = time.monotonic() - t0
        assert all(np.array_equal(g, iq) for g in got)
        assert elapsed < 10.0, elapsed  # one lag timeout (0.3 s), not one per chunk (180 chunks: 54 s)
        assert tx.drops()[dead_endpoint] > 150 and tx.drops()[live.endpoint] == 0
    finally:
        tx.close()
        live.close()
