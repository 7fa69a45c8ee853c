"""The radio backend interface: full-scale complex64 samples in with tx() or tx_burst(), the continuous stream out
with rx()."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from types import TracebackType

import numpy as np

from radio.channel import StreamChannel
from radio.errors import BackendError

FULL_SCALE_TOLERANCE = 1e-6
"""How far above |x| = 1 a transmitted sample may be (rounding) before tx() refuses it."""


def check_tx_samples(iq: np.ndarray) -> np.ndarray:
    """(n,) complex samples -> (n,) complex64, refusing non-1-D, non-finite or beyond-full-scale input."""
    x = np.asarray(iq)
    if x.ndim != 1:
        raise BackendError(f"tx() takes a 1-D array of complex samples, got shape {x.shape}")
    x = x.astype(np.complex64, copy=False)
    if len(x) == 0:
        return x
    if not np.all(np.isfinite(x)):
        raise BackendError("tx() samples contain NaN or infinity")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0 + FULL_SCALE_TOLERANCE:
        raise BackendError(
            f"tx() samples exceed full scale: peak |x| = {peak:.4f} > 1; scale the burst down "
            "(the backend refuses rather than clips)"
        )
    return x


class CableStream(ABC):
    """A received stream fed by a cable: its time runs only as the transmitter's samples arrive, so a reader polls.

    The ZeroMQ IQ cable's receiver is one. A real-time radio (a Pluto) or an in-process channel is not:
    its stream runs whether or not anybody transmits.
    """

    @abstractmethod
    def poll_cable(self, max_messages: int = 64) -> int:
        """Take in messages already waiting on the cable without advancing the stream; how many were read."""

    @abstractmethod
    def wait_cable(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for one message on the cable and take it in; False when none came."""

    @property
    @abstractmethod
    def tx_clock_received(self) -> int:
        """Transmit-clock index just past the last sample (or declared silence) received from the cable."""


class RadioBackend(ABC):
    """Moves complex baseband samples: tx(iq) in full scale |x| <= 1, rx(n) the next n samples of the stream.

    Subclasses implement `sample_rate_hz`, `_tx`, `_rx` and optionally `_close`; this class checks
    arguments, counts samples and refuses use after close(). Use it as a context manager.

    A burst too long to hold in memory goes out as chunks: `tx_burst(chunks)` (an iterable), or chunk by chunk
    with `tx_chunk(iq, first, last)` (for a caller that pushes). Subclasses that must know where a burst starts
    and ends (the zmq cable never pauses inside one, a Pluto streams fixed buffers) override `_tx_chunk`; by
    default each chunk is `_tx`'d as it comes.

    What a caller may ask of any backend, with the defaults of a plain one: `pending` (0),
    `clock_samples` (samples_sent), `channel` (None: the air is the channel) and `cable_stream`
    (None: a stream that runs by itself). A backend that knows better overrides them.
    """

    _samples_sent = 0
    _samples_received = 0
    _closed = False
    _burst_open = False

    @property
    @abstractmethod
    def sample_rate_hz(self) -> float:
        """Baseband sample rate of both directions in samples per second."""

    @property
    def samples_sent(self) -> int:
        """Samples passed to tx() so far."""
        return self._samples_sent

    @property
    def samples_received(self) -> int:
        """Samples returned by rx() so far."""
        return self._samples_received

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._closed

    @property
    def pending(self) -> int:
        """Samples queued ahead of the read position that rx() still has to return (0 when none are known)."""
        return 0

    @property
    def clock_samples(self) -> int:
        """Transmit clock: the sample index the next tx() burst starts at (samples sent, plus declared silence)."""
        return self._samples_sent

    @property
    def channel(self) -> StreamChannel | None:
        """The emulated channel model the received stream goes through (its SNR can be set); None on real air."""
        return None

    @property
    def cable_stream(self) -> CableStream | None:
        """This backend as a cable-fed stream a reader polls; None for a stream that runs by itself."""
        return None

    def tx(self, iq: np.ndarray) -> None:
        """Transmit (n,) complex64 samples with |x| <= 1; raises BackendError naming the peak otherwise."""
        self._check_open()
        self._check_no_burst()
        x = check_tx_samples(iq)
        if len(x):
            self._tx(x)
        self._samples_sent += len(x)

    def tx_burst(self, chunks: Iterable[np.ndarray]) -> int:
        """Transmit one burst given as (n_i,) complex64 chunks, each checked like tx(); returns samples sent.

        The chunks are taken one at a time (one ahead, to know which is last), so a generator's burst never has
        to be in memory. If the iterable or a check raises mid-burst, the burst is ended where it got to and
        the error propagates.
        """
        self._check_open()
        self._check_no_burst()
        sent, held, first = 0, None, True
        try:
            for chunk in chunks:
                x = check_tx_samples(chunk)
                if not len(x):
                    continue
                if held is not None:
                    sent += self._send_chunk(held, first, False)
                    first = False
                held = x
            if held is not None:
                sent += self._send_chunk(held, first, True)
        except BaseException:
            self._end_broken_burst()
            raise
        return sent

    def tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> int:
        """Transmit one chunk of a burst (first: it starts the burst, last: it ends it; an empty last chunk just
        ends it), checked like tx(); returns the samples sent. tx_burst is the iterable form."""
        self._check_open()
        if first == self._burst_open:
            raise BackendError("tx_chunk(first=True) while a burst is open" if first
                               else "tx_chunk(first=False) without an open burst: start one with first=True")
        return self._send_chunk(check_tx_samples(iq), first, last)

    def _send_chunk(self, x: np.ndarray, first: bool, last: bool) -> int:
        self._burst_open = not last
        if len(x) or last:
            self._tx_chunk(x, first, last)
        self._samples_sent += len(x)
        return len(x)

    def _end_broken_burst(self) -> None:
        """End a burst cut short by an error (best effort: the error being raised is the one that matters)."""
        if self._burst_open and not self._closed:
            try:
                self._send_chunk(np.zeros(0, np.complex64), False, True)
            except Exception:
                self._burst_open = False

    def rx(self, num_samples: int) -> np.ndarray:
        """Return the next (num_samples,) complex64 samples of the continuous received stream."""
        self._check_open()
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
            raise BackendError(f"rx() needs a non-negative int number of samples, got {num_samples!r}")
        n = int(num_samples)
        y = self._rx(n) if n else np.zeros(0, np.complex64)
        self._samples_received += n
        return y

    def close(self) -> None:
        """Release the device; further tx()/rx() raise BackendError. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> RadioBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.close()
        return False

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{type(self).__name__} is closed")

    def _check_no_burst(self) -> None:
        if self._burst_open:
            raise BackendError("a burst is open (tx_chunk without last=True): end it before transmitting another")

    @abstractmethod
    def _tx(self, iq: np.ndarray) -> None:
        """Transmit checked (n,) complex64 samples, n >= 1."""

    def _tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> None:
        """Transmit one checked chunk of a burst (n >= 1, or n = 0 for a bare end); default: `_tx` it."""
        if len(iq):
            self._tx(iq)

    @abstractmethod
    def _rx(self, num_samples: int) -> np.ndarray:
        """Return the next (num_samples,) complex64 samples, num_samples >= 1."""

    def _close(self) -> None:
        """Release resources (default: nothing)."""
