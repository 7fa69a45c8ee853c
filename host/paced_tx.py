"""A transmitter paced at its sample rate, as a real radio's DAC drains samples (measurements over the zmq cable).

The ZeroMQ cable takes samples as fast as the edge decodes them, so wall time there says nothing about the
link's idle time. `PacedTx` wraps a transmit backend and models the device's queue: samples play back to
back at sample_rate_hz from when they are handed over (or from when the previous ones end), and a call
returns once at most `ahead_samples` remain queued, as a device's blocking buffer push does.
"""

from __future__ import annotations

import time

import numpy as np

from radio.backends.base import RadioBackend
from radio.errors import BackendError


class PacedTx(RadioBackend):
    """Hands samples to `inner` no faster than its sample rate (one device buffer ahead at most)."""

    def __init__(self, inner: RadioBackend, ahead_samples: int = 1 << 16) -> None:
        if ahead_samples < 0:
            raise BackendError(f"ahead_samples must be >= 0, got {ahead_samples}")
        self.inner = inner
        self.ahead_s = ahead_samples / inner.sample_rate_hz
        self._air_until = 0.0  # monotonic time at which everything handed over has played
        self.waited_s = 0.0

    @property
    def sample_rate_hz(self) -> float:
        return self.inner.sample_rate_hz

    @property
    def clock_samples(self) -> int:
        return self.inner.clock_samples

    def _play(self, samples: int) -> None:
        now = time.monotonic()
        self._air_until = max(self._air_until, now) + samples / self.sample_rate_hz
        wait = self._air_until - self.ahead_s - now
        if wait > 0:
            self.waited_s += wait
            time.sleep(wait)

    def _tx(self, iq: np.ndarray) -> None:
        self.inner.tx(iq)
        self._play(len(iq))

    def _tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> None:
        self.inner.tx_chunk(iq, first, last)
        self._play(len(iq))

    def _rx(self, num_samples: int) -> np.ndarray:
        raise BackendError("PacedTx only transmits")

    def _close(self) -> None:
        self.inner.close()

    @property
    def air_end_s(self) -> float:
        """Monotonic time at which the samples handed over so far have all played."""
        return self._air_until
