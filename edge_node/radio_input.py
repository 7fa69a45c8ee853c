"""The edge's receive stream: read it while a burst is on its way, and tell when a burst has fully arrived."""

from __future__ import annotations

import logging
import time

import numpy as np

from radio.backends.base import CableStream, RadioBackend
from radio.errors import BackendError
from radio.receiver import Receiver, RxPacket
from radio.throttle import LogThrottle

log = logging.getLogger("airlora.edge.radio")

CHUNK_SAMPLES = 1 << 17
TAIL_SAMPLES = 16384  # silence fed after a burst so the receiver completes the last packet
CABLE_WAIT_S = 0.005  # while a burst is expected but nothing is queued: wait this long on the cable (no spin)
STALL_S = 3.0  # a burst whose announced samples stop arriving for this long is closed with what came


class RadioInput:
    """Feeds the backend's stream to the receiver.

    On the ZeroMQ cable the edge reads only what the transmitter has put on the cable (time does not run
    while nobody transmits), and a burst is complete once the cable has delivered the transmit-clock
    index the host announced. On a real-time radio (Pluto) the stream is read continuously while a session
    is open, and a burst counts as complete once its length plus a margin has been read after the host
    said it was sent.
    """

    def __init__(self, backend: RadioBackend, receiver: Receiver) -> None:
        self.backend, self.receiver = backend, receiver
        self._cable_stream = backend.cable_stream
        self.cable = self._cable_stream is not None
        self.samples_read = 0
        self._burst_end: int | None = None  # transmit clock (cable) or stream index (real time) to reach
        self._progress = time.monotonic()  # when the expected burst last made progress on the cable
        self.stalled_bursts = 0
        self.backend_errors = 0
        self._log = LogThrottle(log)  # a stranger's messages on the cable may raise as fast as they come

    def expect(self, first_sample: int, samples_sent: int) -> None:
        """The host has sent a burst: [first_sample, first_sample + samples_sent) of its transmit clock."""
        self._progress = time.monotonic()
        if self.cable:
            self._burst_end = first_sample + samples_sent
        else:
            # a real-time radio may still hold samples ahead of the read position (device buffers, backlog)
            ahead = self.backend.pending
            self._burst_end = self.samples_read + ahead + samples_sent + TAIL_SAMPLES

    def cancel(self) -> None:
        """Forget the burst being waited for (a new session starts; the old burst's end may never come)."""
        self._burst_end = None

    @property
    def expecting(self) -> bool:
        return self._burst_end is not None

    def step(self, session_open: bool, wait_s: float = 0.02) -> tuple[list[RxPacket], bool]:
        """Read what is there; (decoded packets, True when the expected burst has fully arrived).

        A backend error (on the cable: a stranger's message at another sample rate) is logged and the
        stream goes on: whoever can reach the radio port must not be able to stop the daemon.
        """
        try:
            return self._step(session_open, wait_s)
        except BackendError as exc:
            self.backend_errors += 1
            self._log.log(logging.WARNING, "radio input: %s (ignored; the stream goes on)", exc)
            return [], False

    def _step(self, session_open: bool, wait_s: float) -> tuple[list[RxPacket], bool]:
        if self._cable_stream is not None:
            return self._step_cable(self._cable_stream, wait_s)
        if not session_open:
            return [], False
        packets = self._read(CHUNK_SAMPLES)
        done = self._burst_end is not None and self.samples_read >= self._burst_end
        if done:
            self._burst_end = None
        return packets, done

    def _step_cable(self, cable: CableStream, wait_s: float) -> tuple[list[RxPacket], bool]:
        cable.poll_cable()
        pending = self.backend.pending
        if pending > 0:
            self._progress = time.monotonic()
            return self._read(min(pending, CHUNK_SAMPLES)), False
        if self._burst_end is not None:
            if cable.tx_clock_received >= self._burst_end:
                return self._close_burst(), True
            if time.monotonic() - self._progress > STALL_S:
                # The host vanished (or restarted its transmitter) before the whole burst arrived: close
                # the burst with what came, so the host (or its successor) gets a report and a missing list.
                self.stalled_bursts += 1
                log.warning("burst stalled at transmit sample %d of %d for %.0f s; closing it with what arrived",
                            cable.tx_clock_received, self._burst_end, STALL_S)
                return self._close_burst(), True
            wait_s = max(wait_s, CABLE_WAIT_S)
        if wait_s > 0:
            cable.wait_cable(wait_s)  # wait for the cable (or return on timeout)
        return [], False

    def _close_burst(self) -> list[RxPacket]:
        self._burst_end = None
        return self._read(TAIL_SAMPLES)  # silence: lets the receiver finish the last packet

    def _read(self, n: int) -> list[RxPacket]:
        samples = self.backend.rx(n)
        self.samples_read += len(samples)
        return self.receiver.feed(np.asarray(samples, np.complex64))
