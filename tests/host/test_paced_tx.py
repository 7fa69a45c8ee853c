"""PacedTx plays samples at the sample rate: a burst handed over in chunks takes its airtime, less one buffer."""

from __future__ import annotations

import time

import numpy as np

from host.paced_tx import PacedTx
from radio.backends.base import RadioBackend


class Recorder(RadioBackend):
    """A transmitter that keeps what it is given (and when)."""

    def __init__(self, sample_rate_hz: float) -> None:
        self.fs, self.chunks = sample_rate_hz, []

    @property
    def sample_rate_hz(self) -> float:
        return self.fs

    def _tx(self, iq: np.ndarray) -> None:
        self.chunks.append((time.monotonic(), len(iq)))

    def _rx(self, num_samples: int) -> np.ndarray:
        raise NotImplementedError


def test_a_burst_takes_its_airtime_less_one_buffer_and_the_clock_is_the_inner_one() -> None:
    inner = Recorder(1e6)
    paced = PacedTx(inner, ahead_samples=20_000)
    chunk = np.zeros(20_000, np.complex64)
    t0 = time.monotonic()
    for i in range(10):  # 0.2 s of air
        paced.tx_chunk(chunk, i == 0, i == 9)
    took = time.monotonic() - t0
    assert 0.17 <= took < 0.3  # 0.2 s of air, the last 20 ms may still be playing when it returns
    assert paced.air_end_s - t0 >= 0.199 and paced.clock_samples == inner.clock_samples == 200_000
    assert [n for _, n in inner.chunks] == [20_000] * 10
    # an idle transmitter starts the next burst at once (the air was free), not where the clock would be
    time.sleep(0.05)
    t1 = time.monotonic()
    paced.tx(chunk)
    assert time.monotonic() - t1 < 0.01
