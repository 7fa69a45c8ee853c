"""The edge's receive stream for frame v2: feed the burst receiver, and say which announced bursts never came.

The host announces every burst with a BurstDone after its last chunk went to its transmitter, while the
next burst may already be on the air (a pipelined sender). The receiver reports each burst it synchronized
to (an `RxBurst`); a burst it never found is settled here: once the stream has passed the burst's end by
REPORT_MARGIN_SAMPLES, it is returned as overdue, and the session reports it as not detected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from radio.backends.base import CableStream, RadioBackend
from radio.backends.sigmf_io import RecordedFrame, SigmfRecorder
from radio.burst_events import RxEvent
from radio.burst_rx import BurstReceiver
from radio.errors import BackendError
from radio.harq import LlrStore
from radio.throttle import LogThrottle

log = logging.getLogger("airlora.edge.radio")

CHUNK_SAMPLES = 1 << 16  # largest block read and fed at once
SILENCE_SAMPLES = 1 << 14  # read per step past a burst's end on a paused cable (the receiver's processing step)
REPORT_MARGIN_SAMPLES = 1 << 17  # a burst with no RxBurst this far past its end was not detected
MAX_ANNOUNCED = 64  # bursts announced and not yet settled (a host's window is at most 8)
CABLE_WAIT_S = 0.005


@dataclass
class Announced:
    """A burst the host said it sent (BurstDone), not yet settled by an RxBurst."""

    burst: int
    mcs: str | None
    last: bool
    end: int
    """cable: transmit-clock index past its last sample; real time: the stream index past it, with margin"""
    due: int | None = None
    """stream index (samples fed) by which its RxBurst must have come; None until the cable delivered its end"""


@dataclass(frozen=True)
class ReceiverParams:
    """What the burst receiver is built from (the session's waveform, the edge's radio)."""

    sample_rate_hz: float
    samples_per_symbol: int
    rolloff: float
    lo_hz: float | None = None
    locked_clocks: bool = False
    max_payload_bytes: int = 1 << 34
    harq_bytes: int = 32 << 20
    interleave_symbols: int = 0  # radio.interleave_symbols (radio/interleave.py)


class BurstInput:
    """Reads the backend's stream into a BurstReceiver; tracks the announced bursts until they are settled."""

    def __init__(self, backend: RadioBackend, params: ReceiverParams) -> None:
        self.backend, self.params = backend, params
        self.harq = LlrStore(params.harq_bytes)
        self.receiver = BurstReceiver(params.sample_rate_hz, params.samples_per_symbol, params.rolloff,
                                      lo_hz=params.lo_hz, locked_clocks=params.locked_clocks, harq=self.harq,
                                      max_payload_bytes=params.max_payload_bytes,
                                      interleave_symbols=params.interleave_symbols)
        self._cable: CableStream | None = backend.cable_stream
        if isinstance(backend, SigmfRecorder):  # the recording holds v2 bursts now (a BurstReceiver decodes v1 too)
            backend.set_frame(RecordedFrame(2, params.rolloff, params.samples_per_symbol,
                                            interleave_symbols=params.interleave_symbols))
        self.fed = 0  # samples fed to this receiver (its stream index)
        self.announced: dict[int, Announced] = {}
        self.backend_errors = 0
        self._log = LogThrottle(log)

    def announce(self, burst: int, first_sample: int, samples_sent: int, mcs: str | None, last: bool) -> None:
        """The host sent `burst`: [first_sample, first_sample + samples_sent) of its transmit clock."""
        if self._cable is not None:
            entry = Announced(burst, mcs, last, first_sample + samples_sent)
        else:  # a real-time radio may still hold samples ahead of the read position, and the burst after them
            end = self.fed + self.backend.pending + samples_sent
            entry = Announced(burst, mcs, last, end, end + REPORT_MARGIN_SAMPLES)
        self.announced[burst] = entry
        while len(self.announced) > MAX_ANNOUNCED:
            del self.announced[min(self.announced)]

    def settle(self, burst: int) -> list[Announced]:
        """An RxBurst for `burst` came: it and every earlier announced burst are settled; the earlier ones
        (never detected: the stream is past them) are returned, oldest first."""
        self.announced.pop(burst, None)
        earlier = sorted(b for b in self.announced if b < burst)
        return [self.announced.pop(b) for b in earlier]

    def forget(self) -> None:
        """A new session: the old announcements will never be settled."""
        self.announced.clear()

    def step(self, wait_s: float = 0.0) -> tuple[list[RxEvent], list[Announced]]:
        """Read what is there: (receiver events, announced bursts now overdue, oldest first). A backend error
        (a stranger's message on the cable) is logged and the stream goes on."""
        try:
            events = self._step_cable(self._cable, wait_s) if self._cable is not None else self._read(CHUNK_SAMPLES)
        except BackendError as exc:
            self.backend_errors += 1
            self._log.log(logging.WARNING, "radio input: %s (ignored; the stream goes on)", exc)
            events = []
        overdue = sorted((a for a in self.announced.values() if a.due is not None and self.fed >= a.due),
                         key=lambda a: a.burst)
        for a in overdue:
            del self.announced[a.burst]
        return events, overdue

    def _step_cable(self, cable: CableStream, wait_s: float) -> list[RxEvent]:
        cable.poll_cable()
        pending = self.backend.pending
        if pending > 0:
            return self._read(min(pending, CHUNK_SAMPLES))
        waiting = False
        for a in self.announced.values():
            if a.due is None and cable.tx_clock_received >= a.end:
                a.due = self.fed + REPORT_MARGIN_SAMPLES
            waiting |= a.due is not None
        if waiting:  # the cable delivered a burst's end: let the receiver finish it (silence, or the next burst)
            return self._read(SILENCE_SAMPLES)
        if self.announced:
            wait_s = max(wait_s, CABLE_WAIT_S)
        if wait_s > 0:
            cable.wait_cable(wait_s)
        return []

    def _read(self, n: int) -> list[RxEvent]:
        samples = self.backend.rx(n)
        self.fed += len(samples)
        return self.receiver.feed(np.asarray(samples, np.complex64))
