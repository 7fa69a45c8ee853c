"""One transmitter, several ZeroMQ IQ cables: every edge receives the same samples, on one transmit clock.

A radio broadcasts and does not wait for anybody: a cable whose queue stays full (an edge that is dead, or
slower than the stream) waits at most `lag_timeout_s` once; from then on that edge's chunks are dropped
without waiting until its queue has room again. The edge's receiver sees the clock jump and fills the gap
with silence, so whatever it missed becomes erasures. The message format is the ZeroMQ cable's
(radio/backends/zmq_iq.py); each receiver applies its own channel model.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import zmq

from radio.backends.base import RadioBackend
from radio.backends.zmq_iq import (DEFAULT_CHUNK_SAMPLES, DEFAULT_HWM_MESSAGES, FLAG_PAUSE_AFTER, KIND_DATA,
                                   KIND_PAUSE, MAX_CHUNK_SAMPLES, CableCurve, open_socket, pack_header)
from radio.errors import BackendError

MAX_DESTINATIONS = 64


@dataclass
class Destination:
    """One cable of the broadcast and what it carried."""

    endpoint: str
    socket: zmq.Socket
    context: zmq.Context | None
    chunks_sent: int = 0
    chunks_dropped: int = 0
    lagging: bool = False  # its queue was full for lag_timeout_s: sends do not wait until it has room again


class BroadcastTx(RadioBackend):
    """Transmit side of several IQ cables at once (PUSH sockets that connect to each edge's receiver).

    endpoints: each edge's cable address (the edges bind). curves: CurveZMQ keys per endpoint (None: in the
    clear). lag_timeout_s: the longest a send waits for one cable before that cable starts losing samples.
    """

    def __init__(self, endpoints: list[str], sample_rate_hz: float, *, curves: list[CableCurve | None] | None = None,
                 lag_timeout_s: float = 2.0, hwm_messages: int = DEFAULT_HWM_MESSAGES,
                 chunk_samples: int = DEFAULT_CHUNK_SAMPLES, context: zmq.Context | None = None) -> None:
        if not 1 <= len(endpoints) <= MAX_DESTINATIONS:
            raise BackendError(f"a broadcast has 1..{MAX_DESTINATIONS} cables, got {len(endpoints)}")
        if not sample_rate_hz > 0 or not 1 <= chunk_samples <= MAX_CHUNK_SAMPLES or not lag_timeout_s >= 0:
            raise BackendError("sample_rate_hz must be > 0, chunk_samples in 1..2**18 and lag_timeout_s >= 0")
        curves = curves or [None] * len(endpoints)
        self._sample_rate_hz = float(sample_rate_hz)
        self._chunk = int(chunk_samples)
        self._lag_ms = int(lag_timeout_s * 1000)
        self._stream_id = secrets.randbits(32)
        self._clock = 0
        self.destinations: list[Destination] = []
        try:
            for endpoint, curve in zip(endpoints, curves, strict=True):
                sock, address, own, _ = open_socket(context, zmq.PUSH, endpoint, False,
                                                    {zmq.SNDHWM: int(hwm_messages), zmq.LINGER: 0}, "TX", curve)
                self.destinations.append(Destination(address, sock, own))
        except BaseException:
            self._close()
            raise

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate in samples per second."""
        return self._sample_rate_hz

    @property
    def clock_samples(self) -> int:
        """The one transmit clock every cable's messages are stamped with."""
        return self._clock

    def drops(self) -> dict[str, int]:
        """Chunks each cable lost so far (its edge was not taking samples), by endpoint."""
        return {d.endpoint: d.chunks_dropped for d in self.destinations}

    def _send(self, d: Destination, parts: list) -> None:
        """Send to one cable: wait up to the lag timeout unless it is lagging; drop when it has no room."""
        if not d.lagging and not d.socket.poll(self._lag_ms, zmq.POLLOUT):
            d.lagging = True
        try:
            d.socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            d.lagging = True
            d.chunks_dropped += 1
            return
        d.lagging = False
        d.chunks_sent += 1

    def _tx(self, iq: np.ndarray) -> None:
        for i in range(0, len(iq), self._chunk):
            chunk = np.ascontiguousarray(iq[i:i + self._chunk], dtype="<c8")
            flags = FLAG_PAUSE_AFTER if i + self._chunk >= len(iq) else 0
            head = pack_header(KIND_DATA, self._stream_id, self._clock, len(chunk), self._sample_rate_hz, flags)
            for d in self.destinations:
                self._send(d, [head, memoryview(chunk).cast("B")])
            self._clock += len(chunk)

    def _rx(self, num_samples: int) -> np.ndarray:
        raise BackendError("BroadcastTx only transmits; each edge receives with its own ZmqRxBackend")

    def _close(self) -> None:
        pause = pack_header(KIND_PAUSE, self._stream_id, self._clock, 0, self._sample_rate_hz)
        for d in self.destinations:
            try:
                d.socket.send(pause, flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            d.socket.close(linger=0)
            if d.context is not None:
                d.context.term()
