"""In-process backend: transmitted samples go through a Channel into one continuous received stream."""

from __future__ import annotations

from collections import deque

import numpy as np

from radio.backends.base import RadioBackend
from radio.channel import Channel
from radio.errors import BackendError

MAX_IDLE_START_SAMPLES = 5000
"""Upper bound of the seeded random noise-only gap at the start of a stream."""


class SampleQueue:
    """FIFO of transmitted samples that the receiver has not reached yet."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Samples queued."""
        return self._pending

    def push(self, samples: np.ndarray) -> None:
        """Append (n,) complex samples behind what is queued."""
        if len(samples):
            self._chunks.append(np.asarray(samples, np.complex64))
            self._pending += len(samples)

    def pop(self, num_samples: int) -> np.ndarray:
        """Remove and return up to num_samples queued samples, (m,) complex64 with m <= num_samples."""
        parts, need = [], num_samples
        while need and self._chunks:
            head = self._chunks[0]
            if len(head) <= need:
                parts.append(self._chunks.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                self._chunks[0] = head[need:]
                need = 0
        out = np.concatenate(parts) if parts else np.zeros(0, np.complex64)
        self._pending -= len(out)
        return out

    def clear(self) -> None:
        """Drop everything queued."""
        self._chunks.clear()
        self._pending = 0


def idle_start(idle_start_samples: int | None, rng: np.random.Generator) -> int:
    """The noise-only gap before the first transmitted sample: given, or drawn from 0..MAX_IDLE_START_SAMPLES."""
    if idle_start_samples is None:
        return int(rng.integers(0, MAX_IDLE_START_SAMPLES + 1))
    if idle_start_samples < 0:
        raise BackendError(f"idle_start_samples must be >= 0, got {idle_start_samples}")
    return int(idle_start_samples)


class SimBackend(RadioBackend):
    """Carries IQ in-process through a `Channel`; time is counted in samples of the received stream.

    The stream starts with `idle_start_samples` noise-only samples (seeded random 0..5000 unless
    given), then every tx() burst (and tx_burst() chunk) in order, back to back. rx(n) returns the next n samples; where
    nothing was transmitted the channel sees zeros, so noise (and every impairment's state) continues
    between bursts. The channel is applied as samples are received, so an SNR change through
    `channel.set_snr_db` affects samples received after it.

    Parameters
    ----------
    channel: the channel model; its sample rate must equal sample_rate_hz.
    sample_rate_hz: baseband sample rate.
    idle_start_samples: noise-only samples before the first burst; None draws 0..5000 from seed.
    seed: seed of the idle-start draw.
    """

    def __init__(
        self,
        channel: Channel,
        sample_rate_hz: float,
        idle_start_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if abs(channel.sample_rate_hz - sample_rate_hz) > 1e-6 * sample_rate_hz:
            raise BackendError(
                f"channel sample rate {channel.sample_rate_hz} Hz differs from backend {sample_rate_hz} Hz"
            )
        self._channel = channel
        self._sample_rate_hz = float(sample_rate_hz)
        self._queue = SampleQueue()
        self._idle_start = idle_start(idle_start_samples, np.random.default_rng(seed))
        self._queue.push(np.zeros(self._idle_start, np.complex64))

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate in samples per second."""
        return self._sample_rate_hz

    @property
    def channel(self) -> Channel:
        """The channel model between tx() and rx()."""
        return self._channel

    @property
    def idle_start_samples(self) -> int:
        """Noise-only samples at the start of the stream, before the first transmitted sample."""
        return self._idle_start

    @property
    def pending(self) -> int:
        """Received-stream samples the queue completes (the idle start and transmitted bursts not yet received):
        with a sample clock offset n queued samples give about n / (1 + eps) received ones, and reading more
        than that would pad silence into the middle of a burst."""
        return self._channel.output_samples_for(self._queue.pending)

    def _tx(self, iq: np.ndarray) -> None:
        self._queue.push(iq)

    def _rx(self, num_samples: int) -> np.ndarray:
        need = self._channel.input_samples_for(num_samples)  # num_samples unless the channel has a clock offset
        x = self._queue.pop(need)
        if len(x) < need:
            x = np.concatenate([x, np.zeros(need - len(x), np.complex64)])
        return self._channel.apply(x, num_samples)

    def _close(self) -> None:
        self._queue.clear()
