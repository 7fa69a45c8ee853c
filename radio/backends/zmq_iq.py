"""IQ over ZeroMQ: a virtual radio cable between two processes or machines, with the channel at the receiver.

The transmitter (PUSH) stamps chunks with its sample clock and declares silence; the receiver (PULL) owns time,
fills gaps with silence and applies the channel model. One cable carries one direction. The full design
(blocking rules, message format, restarts) is in docs/radio_backends.md.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import zmq

from radio.backends.base import CableStream, RadioBackend
from radio.channel import StreamChannel
from radio.errors import BackendError
from radio.throttle import LogThrottle

log = logging.getLogger(__name__)

MAGIC = b"AIQ\x01"
PROTOCOL_VERSION = 1
KIND_DATA, KIND_IDLE, KIND_PAUSE = 0, 1, 2
FLAG_PAUSE_AFTER = 0x01
DTYPE_CF32_LE = 1
HEADER = struct.Struct("<4sBBBBIQQd")  # magic, version, kind, flags, dtype, stream id, start, count, rate
MAX_CHUNK_SAMPLES = 1 << 18
"""Largest data message accepted (2 MiB of complex64); bigger ones are malformed."""
MAX_IDLE_SAMPLES = 1 << 40
"""Largest silence one idle message may declare (the transmitter's limit; a receiver sets its own, lower one)."""
DEFAULT_CHUNK_SAMPLES = 1 << 15
DEFAULT_HWM_MESSAGES = 16
DEFAULT_MAX_GAP_SAMPLES = 10_000_000
"""Receiver: the longest silence one message may declare (an idle, or a jump of its start index): 10 s at 1 MS/s."""
MAX_PLACEMENTS = 1024
"""Receiver: anchor points kept for `placements` (tests and diagnostics read the first ones)."""
DEFAULT_WINDOW_SAMPLES = 1 << 21
"""Receiver: samples taken off the cable ahead of rx() (16 MiB of complex64); beyond, the cable pushes back."""


def _rate_matches(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


@dataclass(frozen=True)
class CableCurve:
    """CurveZMQ keys of one end of the IQ cable (Z85 text, 40 bytes each). The receiver (the edge) is the CURVE
    server whichever side binds: it lets in only the transmitters whose public keys are in `authorized`; the
    transmitter (the host) needs its own pair and the receiver's public key (`server_public`)."""

    public: bytes
    secret: bytes
    server_public: bytes | None = None
    authorized: frozenset[bytes] = field(default_factory=frozenset)


class _AuthorizedKeys:
    """The ZAP callback of a receiver: a transmitter's Z85 public key must be one of the authorized ones."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the transmitter with this Z85 public key may connect (any ZAP domain)."""
        return bytes(key) in self.keys


def pack_header(kind: int, stream_id: int, start: int, count: int, sample_rate_hz: float, flags: int = 0) -> bytes:
    """The 36-byte little-endian header of one message."""
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, flags, DTYPE_CF32_LE, stream_id, start, count, sample_rate_hz)


def open_socket(
    context: zmq.Context | None, kind: int, endpoint: str, bind: bool, options: dict[int, int], side: str,
    curve: CableCurve | None = None,
) -> tuple[zmq.Socket, str, zmq.Context | None, object | None]:
    """(socket, address in use, own context, authenticator): a `kind` socket with `options` set, bound to or
    connected to endpoint.

    The address in use is the resolved one when bound (tcp://host:* gets its port); BackendError names
    the side ("TX" or "RX") when the endpoint cannot be bound or connected. With `curve` the socket gets
    its own context (the caller terminates it), CurveZMQ keys, and on the receiving side (the CURVE server)
    a ZAP authenticator that lets in only `curve.authorized` keys (the caller stops it).
    """
    own = auth = None
    if curve is not None:
        if endpoint.startswith("inproc://"):
            raise BackendError(f"zmq {side} {endpoint}: CurveZMQ on the IQ cable needs a tcp:// or ipc:// endpoint")
        if not zmq.has("curve"):
            raise BackendError(f"zmq {side}: libzmq {zmq.zmq_version()} was built without CurveZMQ")
        if kind == zmq.PUSH and curve.server_public is None:
            raise BackendError(f"zmq {side}: CurveZMQ needs the receiver's public key")
        context = own = zmq.Context()
    sock = (context or zmq.Context.instance()).socket(kind)
    try:
        for option, value in options.items():
            sock.setsockopt(option, value)
        if curve is not None:
            sock.curve_secretkey, sock.curve_publickey = curve.secret, curve.public
            if kind == zmq.PUSH:
                sock.curve_serverkey = curve.server_public
            else:
                from zmq.auth.thread import ThreadAuthenticator

                auth = ThreadAuthenticator(own, log=logging.getLogger(f"{__name__}.auth"))
                auth.start()
                auth.configure_curve_callback("*", _AuthorizedKeys(frozenset(curve.authorized)))
                sock.curve_server = True
        if bind:
            sock.bind(endpoint)
            return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT), own, auth
        sock.connect(endpoint)
        return sock, endpoint, own, auth
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        if auth is not None:
            auth.stop()
        if own is not None:
            own.term()
        raise BackendError(f"zmq {side} cannot {'bind' if bind else 'connect'} {endpoint}: {exc}") from None


class ZmqTxBackend(RadioBackend):
    """Transmit side of the ZeroMQ IQ cable (PUSH). rx() raises: this side only transmits.

    Parameters
    ----------
    endpoint: ZeroMQ address, e.g. tcp://127.0.0.1:5600, tcp://*:5600 with bind, or inproc://name.
    sample_rate_hz: baseband sample rate; the receiver refuses messages stamped with another rate.
    bind: bind the endpoint (True) or connect to it (False).
    context: ZeroMQ context; the process-wide instance by default (inproc needs both sides in one).
    pause_after_tx: end every tx() and every tx_burst() with a pause (the receiver fills silence once it has
        read the burst; never inside a tx_burst's chunks); False makes a continuous stream in which gaps must be
        declared with idle() or pause().
    chunk_samples: samples per data message.
    hwm_messages: send high-water mark in messages; beyond it tx() blocks (nothing is dropped).
    send_timeout_s: how long tx() may block on a full queue before raising BackendError; None waits forever.
    linger_s: how long close() waits for queued messages to leave.
    stream_id: identifies this transmitter's stream to the receiver; random by default.
    curve: CurveZMQ keys (this transmitter's pair, the receiver's public key); None sends in the clear.
    """

    def __init__(
        self,
        endpoint: str,
        sample_rate_hz: float,
        bind: bool = False,
        *,
        context: zmq.Context | None = None,
        pause_after_tx: bool = True,
        chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
        hwm_messages: int = DEFAULT_HWM_MESSAGES,
        send_timeout_s: float | None = 10.0,
        linger_s: float = 5.0,
        stream_id: int | None = None,
        curve: CableCurve | None = None,
    ) -> None:
        if not sample_rate_hz > 0:
            raise BackendError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if not 1 <= chunk_samples <= MAX_CHUNK_SAMPLES:
            raise BackendError(f"chunk_samples must be in 1..{MAX_CHUNK_SAMPLES}, got {chunk_samples}")
        self._sample_rate_hz = float(sample_rate_hz)
        self._pause_after_tx = bool(pause_after_tx)
        self._chunk = int(chunk_samples)
        self._stream_id = secrets.randbits(32) if stream_id is None else int(stream_id) & 0xFFFFFFFF
        self._clock = 0
        self._linger_ms = int(linger_s * 1000)
        send_timeout_ms = -1 if send_timeout_s is None else int(send_timeout_s * 1000)
        self._sock, self._endpoint, self._own_context, _ = open_socket(
            context, zmq.PUSH, endpoint, bind,
            {zmq.SNDHWM: int(hwm_messages), zmq.SNDTIMEO: send_timeout_ms, zmq.LINGER: self._linger_ms}, "TX", curve)
        self.curve = curve is not None

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate in samples per second."""
        return self._sample_rate_hz

    @property
    def endpoint(self) -> str:
        """The address in use (the resolved port when bound to tcp://host:*)."""
        return self._endpoint

    @property
    def stream_id(self) -> int:
        """32-bit id of this transmitter's stream."""
        return self._stream_id

    @property
    def clock_samples(self) -> int:
        """Transmitter clock: samples sent plus silence declared with idle()."""
        return self._clock

    def idle(self, num_samples: int) -> None:
        """Declare num_samples of silence after what was sent (exact: the receiver inserts them)."""
        self._check_open()
        n = int(num_samples)
        if not 0 <= n <= MAX_IDLE_SAMPLES:
            raise BackendError(f"idle() takes 0..{MAX_IDLE_SAMPLES} samples, got {num_samples}")
        if n:
            self._send([pack_header(KIND_IDLE, self._stream_id, self._clock, n, self._sample_rate_hz)])
            self._clock += n

    def pause(self) -> None:
        """Declare open-ended silence: the receiver fills noise until the next burst, which starts where it is."""
        self._check_open()
        self._send([pack_header(KIND_PAUSE, self._stream_id, self._clock, 0, self._sample_rate_hz)])

    def _send(self, parts: list) -> None:
        """Queue one message, copied: libzmq owns what it queues, so IQ held is bounded by hwm_messages. A zero-copy
        send would keep each array until pyzmq's garbage thread, which needs the GIL once per message, released it
        after the kernel took the bytes: unbounded by the HWM when the sending thread keeps the GIL (issue 16)."""
        try:
            self._sock.send_multipart(parts, copy=True)
        except zmq.Again:
            hint = ("; with CurveZMQ: is this host's key authorized at the edge, and the server key the edge's?"
                    if self.curve else "")
            raise BackendError(
                f"zmq TX to {self._endpoint}: the receiver has not drained the queue within the send timeout "
                f"(is the edge running and calling rx()?{hint})"
            ) from None

    def _tx(self, iq: np.ndarray) -> None:
        self._tx_chunk(iq, True, True)

    def _tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> None:
        """Data messages of chunk_samples; only a burst's last message carries FLAG_PAUSE_AFTER (with
        pause_after_tx), so the receiver waits for the rest of a burst instead of filling silence inside it."""
        pause = last and self._pause_after_tx
        if not len(iq):
            if pause:
                self.pause()
            return
        for i in range(0, len(iq), self._chunk):
            chunk = np.ascontiguousarray(iq[i:i + self._chunk], dtype="<c8")
            flags = FLAG_PAUSE_AFTER if pause and i + self._chunk >= len(iq) else 0
            self._send([pack_header(KIND_DATA, self._stream_id, self._clock, len(chunk), self._sample_rate_hz, flags),
                        chunk])
            self._clock += len(chunk)

    def _rx(self, num_samples: int) -> np.ndarray:
        raise BackendError("ZmqTxBackend is the transmit side of the IQ cable; receive with a ZmqRxBackend")

    def _close(self) -> None:
        try:
            self._sock.send_multipart([pack_header(KIND_PAUSE, self._stream_id, self._clock, 0, self._sample_rate_hz)],
                                      flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        self._sock.close(linger=self._linger_ms)
        if self._own_context is not None:
            self._own_context.term()


class ZmqRxBackend(RadioBackend, CableStream):
    """Receive side of the ZeroMQ IQ cable (PULL); owns stream time and applies the channel. tx() raises.

    Parameters
    ----------
    endpoint: ZeroMQ address (see ZmqTxBackend).
    sample_rate_hz: baseband sample rate; messages stamped with another rate are refused.
    channel: Channel or ScheduledChannel applied to the received stream; None passes samples through
        unchanged (silence is exact zeros), for tests of the cable itself.
    bind: bind the endpoint (True, the usual edge side) or connect to it.
    timeout_s: while the transmitter is active, how long rx() waits for samples before treating it as
        paused (logged); None waits forever.
    context: ZeroMQ context; the process-wide instance by default.
    hwm_messages: receive high-water mark in messages (backpressure to the transmitter).
    realtime_idle: while the transmitter is idle, produce silence no faster than sample_rate_hz of wall
        time (rx() waits, and a burst arriving meanwhile cuts the wait short); saves CPU on an idle edge
        and makes stream time track wall time. False (the default, for tests and CI) returns at once.
    max_gap_samples: the longest silence one message may declare, as an idle or as a jump of its start
        index; a longer one is refused as malformed (never waited out).
    window_samples: samples taken off the cable ahead of what rx() asks for (poll_cable, wait_cable); at the
        window the rest stays on the cable, whose high-water mark pushes back on the transmitter.
    curve: CurveZMQ keys (this receiver's pair, the transmitters it lets in); None accepts anyone in the clear.
    """

    def __init__(
        self,
        endpoint: str,
        sample_rate_hz: float,
        channel: StreamChannel | None = None,
        bind: bool = True,
        timeout_s: float | None = 1.0,
        *,
        context: zmq.Context | None = None,
        hwm_messages: int = DEFAULT_HWM_MESSAGES,
        realtime_idle: bool = False,
        max_gap_samples: int = DEFAULT_MAX_GAP_SAMPLES,
        window_samples: int = DEFAULT_WINDOW_SAMPLES,
        curve: CableCurve | None = None,
    ) -> None:
        if not sample_rate_hz > 0:
            raise BackendError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if not 1 <= max_gap_samples <= MAX_IDLE_SAMPLES or window_samples < 1:
            raise BackendError(f"max_gap_samples must be in 1..{MAX_IDLE_SAMPLES} and window_samples >= 1, got "
                               f"{max_gap_samples} and {window_samples}")
        if channel is not None and not _rate_matches(channel.sample_rate_hz, sample_rate_hz):
            raise BackendError(
                f"channel sample rate {channel.sample_rate_hz} Hz differs from backend {sample_rate_hz} Hz"
            )
        if timeout_s is not None and timeout_s < 0:
            raise BackendError(f"timeout_s must be >= 0 or None, got {timeout_s}")
        self._sample_rate_hz = float(sample_rate_hz)
        self._channel = channel
        self._timeout_ms = None if timeout_s is None else int(timeout_s * 1000)
        self._queue: deque[np.ndarray | int] = deque()  # samples, or a count of silent samples
        self._queued = 0
        self._pos = 0  # stream index of the next sample rx() returns
        self._stream_id: int | None = None
        self._tx_next = 0  # transmitter clock index the next message of the stream should start at
        self._offset = 0  # rx index = tx index + offset
        self._active = False  # the transmitter said more samples follow
        self._placements: list[tuple[int, int, int]] = []
        self._realtime = bool(realtime_idle)
        self._clock_anchor = (time.monotonic(), 0)  # (wall time, stream index) for realtime_idle
        self._max_gap = int(max_gap_samples)
        self._window = int(window_samples)
        self._log = LogThrottle(log)
        self.malformed_messages = 0
        self.lost_samples = 0
        self._sock, self._endpoint, self._own_context, self._auth = open_socket(
            context, zmq.PULL, endpoint, bind,
            {zmq.RCVHWM: int(hwm_messages), zmq.MAXMSGSIZE: HEADER.size + 8 * MAX_CHUNK_SAMPLES, zmq.LINGER: 0}, "RX",
            curve)
        self.curve = curve is not None

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate in samples per second."""
        return self._sample_rate_hz

    @property
    def endpoint(self) -> str:
        """The address in use (the resolved port when bound to tcp://host:*)."""
        return self._endpoint

    @property
    def channel(self) -> StreamChannel | None:
        """The channel model applied to the received stream (None: pass-through)."""
        return self._channel

    @property
    def tx_active(self) -> bool:
        """True while the transmitter has announced more samples (rx() waits for them)."""
        return self._active

    @property
    def pending(self) -> int:
        """Samples (and declared silence) received from the cable but not yet returned by rx(), as received samples:
        with a sample clock offset n cable samples give about n / (1 + eps) (asking for more waits on the cable)."""
        return self._queued if self._channel is None else self._channel.output_samples_for(self._queued)

    @property
    def tx_clock_received(self) -> int:
        """Transmit-clock index just past the last sample (or declared silence) received from the cable."""
        return self._tx_next if self._stream_id is not None else 0

    @property
    def window_samples(self) -> int:
        """Samples taken off the cable ahead of rx(), at most (plus one message)."""
        return self._window

    def poll_cable(self, max_messages: int = 64) -> int:
        """Take in messages already waiting on the cable without advancing the stream, up to the window; how
        many were read."""
        self._check_open()
        count = 0
        while count < max_messages and self._queued < self._window and self._poll(0):
            count += 1
        return count

    def wait_cable(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for one message on the cable and take it in; False when none came (or the window
        is full: then nothing is taken)."""
        if self._queued >= self._window:
            return False
        return self._poll(int(timeout_s * 1000))

    @property
    def cable_stream(self) -> ZmqRxBackend:
        """This receiver: its stream is fed by the cable (a reader polls it)."""
        return self

    @property
    def placements(self) -> list[tuple[int, int, int]]:
        """(stream id, tx clock index, rx stream index) for every point where a transmitter's clock was anchored
        (the first MAX_PLACEMENTS of them: a stranger sending new stream ids cannot grow the list without end)."""
        return list(self._placements)

    def _tx(self, iq: np.ndarray) -> None:
        raise BackendError("ZmqRxBackend is the receive side of the IQ cable; transmit with a ZmqTxBackend")

    # --- receiving --------------------------------------------------------------------------------
    def _rx(self, num_samples: int) -> np.ndarray:
        # cable samples for num_samples received ones: as many, unless the channel has a sample clock offset
        need = num_samples if self._channel is None else self._channel.input_samples_for(num_samples)
        while self._queued < need:
            if self._poll(0):
                continue
            if not self._active:
                if self._realtime and self._pace(need):
                    continue  # a message came while pacing
                self._enqueue(need - self._queued)  # the transmitter is idle: silence
                break
            if not self._poll(self._timeout_ms):
                self._log.log(logging.WARNING, "zmq RX %s: no samples for %.1f s from an active transmitter; "
                              "treating it as idle", self._endpoint, (self._timeout_ms or 0) / 1000)
                self._active = False
        x = self._pop(need)
        self._pos += need
        return x if self._channel is None else self._channel.apply(x, num_samples)

    def _pace(self, num_samples: int) -> bool:
        """Wait until wall time reaches the stream time of the request's end; True if a message arrived first."""
        now = time.monotonic()
        t0, n0 = self._clock_anchor
        if (self._pos - n0) / self._sample_rate_hz < now - t0 - 0.5:  # caller fell behind: restart the clock
            t0, n0 = self._clock_anchor = (now, self._pos)
        wait_s = (self._pos + num_samples - n0) / self._sample_rate_hz - (now - t0)
        return wait_s > 0 and self._poll(int(wait_s * 1000) + 1)

    def _poll(self, timeout_ms: int | None) -> bool:
        """Handle one message if one arrives within timeout_ms; False when none did."""
        if not self._sock.poll(timeout_ms, zmq.POLLIN):
            return False
        self._handle(self._sock.recv_multipart(copy=False))
        return True

    def _malformed(self, why: str) -> None:
        self.malformed_messages += 1
        self._log.log(logging.WARNING, "zmq RX %s: dropped a malformed message: %s", self._endpoint, why)

    def _handle(self, frames: list) -> None:
        head = frames[0].bytes
        if len(head) != HEADER.size:
            return self._malformed(f"header of {len(head)} bytes, expected {HEADER.size}")
        magic, version, kind, flags, dtype, stream_id, start, count, rate = HEADER.unpack(head)
        if magic != MAGIC:
            return self._malformed(f"bad magic {magic!r}")
        if version != PROTOCOL_VERSION:
            return self._malformed(f"protocol version {version}, this receiver speaks {PROTOCOL_VERSION}")
        if dtype != DTYPE_CF32_LE or flags & ~FLAG_PAUSE_AFTER or kind not in (KIND_DATA, KIND_IDLE, KIND_PAUSE):
            return self._malformed(f"unknown dtype {dtype}, flags {flags:#x} or kind {kind}")
        if not np.isfinite(rate) or rate <= 0:
            return self._malformed(f"sample rate {rate}")
        if start + count >= 1 << 63:
            return self._malformed(f"start {start} + count {count} overflows")
        samples = None
        if kind == KIND_DATA:
            if len(frames) != 2 or not 1 <= count <= MAX_CHUNK_SAMPLES or len(frames[1].buffer) != 8 * count:
                return self._malformed(f"data message of {len(frames)} frames announcing {count} samples")
            samples = np.frombuffer(frames[1].buffer, dtype="<c8")
            if not np.all(np.isfinite(samples)):
                return self._malformed("samples contain NaN or infinity")
        elif len(frames) != 1 or (kind == KIND_IDLE and count < 1) or (kind == KIND_PAUSE and count != 0):
            return self._malformed(f"{'idle' if kind == KIND_IDLE else 'pause'} message with {len(frames)} frames, "
                                   f"count {count}")
        elif kind == KIND_IDLE and count > self._max_gap:
            return self._malformed(f"idle of {count} samples, longer than this receiver's limit of {self._max_gap}")
        if not _rate_matches(rate, self._sample_rate_hz):
            self.malformed_messages += 1
            raise BackendError(
                f"zmq RX {self._endpoint}: the transmitter runs at {rate:g} Hz but this receiver at "
                f"{self._sample_rate_hz:g} Hz; set the same radio.sample_rate_hz on both sides"
            )
        write = self._pos + self._queued
        if stream_id != self._stream_id:
            if self._stream_id is not None:
                self._log.log(logging.INFO, "zmq RX %s: new transmitter stream %08x", self._endpoint, stream_id)
            self._anchor(stream_id, start, write)
        elif start < self._tx_next:
            return self._malformed(f"stream {stream_id:08x} went back from sample {self._tx_next} to {start}")
        elif start + self._offset < write:  # the receiver ran ahead while the transmitter was idle
            self._anchor(stream_id, start, write)
        elif start - self._tx_next > self._max_gap:
            return self._malformed(f"stream {stream_id:08x} jumps {start - self._tx_next} samples ahead, more "
                                   f"silence than this receiver's limit of {self._max_gap}")
        elif start > self._tx_next:
            self.lost_samples += start - self._tx_next
            self._log.log(logging.WARNING, "zmq RX %s: %d samples of stream %08x missing; filled with silence",
                          self._endpoint, start - self._tx_next, stream_id)
        self._enqueue(start + self._offset - write)  # a declared or lost gap
        if samples is not None:
            self._queue.append(samples)
            self._queued += count
        elif kind == KIND_IDLE:
            self._enqueue(count)
        self._tx_next = start + count
        self._active = kind != KIND_PAUSE and not flags & FLAG_PAUSE_AFTER

    def _anchor(self, stream_id: int, start: int, rx_index: int) -> None:
        self._stream_id, self._tx_next, self._offset = stream_id, start, rx_index - start
        if len(self._placements) < MAX_PLACEMENTS:
            self._placements.append((stream_id, start, rx_index))

    def _enqueue(self, silent_samples: int) -> None:
        if silent_samples > 0:
            self._queue.append(int(silent_samples))
            self._queued += silent_samples

    def _pop(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.complex64)
        i = 0
        while i < n:
            head = self._queue[0]
            size = head if isinstance(head, int) else len(head)
            take = min(n - i, size)
            if not isinstance(head, int):
                out[i:i + take] = head[:take]
            if take == size:
                self._queue.popleft()
            else:
                self._queue[0] = head - take if isinstance(head, int) else head[take:]
            i += take
        self._queued -= n
        return out

    def _close(self) -> None:
        self._queue.clear()
        self._queued = 0
        self._sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._own_context is not None:
            self._own_context.term()


def loopback_pair(
    sample_rate_hz: float,
    channel: StreamChannel | None = None,
    endpoint: str | None = None,
    timeout_s: float | None = 1.0,
    realtime_idle: bool = False,
    **tx_options,
) -> tuple[ZmqTxBackend, ZmqRxBackend]:
    """A connected (tx, rx) pair in this process: the receiver binds `endpoint` (a fresh inproc one by default).

    tx_options go to ZmqTxBackend (pause_after_tx, chunk_samples, hwm_messages, ...).
    """
    rx = ZmqRxBackend(endpoint or f"inproc://airlora-iq-{secrets.token_hex(4)}", sample_rate_hz, channel,
                      bind=True, timeout_s=timeout_s, realtime_idle=realtime_idle)
    return ZmqTxBackend(rx.endpoint, sample_rate_hz, bind=False, **tx_options), rx
