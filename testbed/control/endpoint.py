"""What both ends of the ZeroMQ control plane share: errors, peer records, socket options, the I/O loop.

Threads: each ControlServer / ControlClient owns a private zmq.Context and one background I/O thread,
the only thread that touches the network socket (zmq sockets are not thread-safe). Callers talk to it
through an inproc PAIR pipe (outgoing messages, guarded by a lock, so `send` may be called from any
thread) and a locked inbox (incoming messages, with a condition variable for `poll`/`recv` timeouts).
Heartbeats therefore keep flowing while the caller is busy (fine-tuning, evaluating).

Liveness: the host sends a Heartbeat every heartbeat_s; the edge answers each one with its own
Heartbeat carrying its instance id. A side that hears nothing from its peer for peer_timeout_s reports a
local `PeerLost` event (never on the wire) in its inbox, and logs it.
"""

from __future__ import annotations

import collections
import logging
import os
import socket as pysocket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from radio.throttle import LogThrottle
from testbed import __version__
from testbed.errors import AirLoraError
from testbed.messages import Hello

log = logging.getLogger("testbed.control")

HWM_MESSAGES = 1000  # send and receive high-water marks, in messages
_DRAIN_BATCH = 256  # socket messages handled per loop turn before the pipe and the timers get a turn


class ControlError(AirLoraError):
    """The control socket cannot be opened (port in use, bad endpoint) or was closed."""


class PeerTimeout(AirLoraError):
    """The peer did not answer in time, or vanished while we waited."""


class RemoteError(AirLoraError):
    """The peer answered a request with an Error message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the peer refused the request: {code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PeerLost:
    """Local event (never sent): a peer went silent for peer_timeout_s, restarted, or was dropped."""

    peer_id: bytes
    reason: str
    silent_s: float
    type: str = "peer_lost"


@dataclass(frozen=True)
class PeerInfo:
    """A host the edge knows: what it said in Hello, when it was last heard and last did more than heartbeat
    (time.monotonic()), and its CurveZMQ public key (Z85) when the control plane authenticates hosts."""

    peer_id: bytes
    hello: Hello
    first_seen: float
    last_seen: float
    last_active: float = 0.0
    user_id: str | None = None


def peer_name(peer_id: bytes) -> str:
    """A printable form of a ZeroMQ routing id."""
    try:
        text = peer_id.decode("ascii")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return "0x" + peer_id.hex()


def set_socket_options(sock: zmq.Socket, max_message_bytes: int, heartbeat_s: float, peer_timeout_s: float) -> None:
    """LINGER 0, MAXMSGSIZE, HWMs, ZMTP heartbeats and a handshake deadline."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, int(max_message_bytes))
    sock.setsockopt(zmq.SNDHWM, HWM_MESSAGES)
    sock.setsockopt(zmq.RCVHWM, HWM_MESSAGES)
    # ZMTP-level pings close dead TCP connections (a pulled cable) so ZeroMQ reconnects.
    sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(heartbeat_s * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(peer_timeout_s * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TTL, min(6553500, max(100, int(peer_timeout_s * 1000))))
    # A connection that never completes its greeting (a raw TCP stranger) is closed after this.
    sock.setsockopt(zmq.HANDSHAKE_IVL, max(100, int(peer_timeout_s * 1000)))


_MONITOR_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
                   | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                   | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
HANDSHAKE_FAILED_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                           | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class Endpoint:
    """One socket owned by one I/O thread, a pipe in and an inbox out (shared by server and client)."""

    _kind = "control"

    def __init__(self, max_message_bytes: int, heartbeat_s: float, peer_timeout_s: float) -> None:
        if peer_timeout_s <= heartbeat_s:
            raise ControlError(f"peer_timeout_s ({peer_timeout_s}) must exceed heartbeat_s ({heartbeat_s})")
        self.max_message_bytes = int(max_message_bytes)
        self.heartbeat_s = float(heartbeat_s)
        self.peer_timeout_s = float(peer_timeout_s)
        self._ctx = zmq.Context(io_threads=1)
        self._pipe_lock = threading.Lock()
        self._cond = threading.Condition()
        self._inbox: collections.deque[Any] = collections.deque()
        self._stats: collections.Counter[str] = collections.Counter()
        self._closed = False
        self._failure: BaseException | None = None
        self._throttle = LogThrottle(log)
        address = f"inproc://airlora-{self._kind}-{os.getpid()}-{id(self):x}-{os.urandom(4).hex()}"
        self._pipe_io = self._ctx.socket(zmq.PAIR)
        self._pipe_io.setsockopt(zmq.LINGER, 0)
        self._pipe_io.bind(address)
        self._pipe_user = self._ctx.socket(zmq.PAIR)
        self._pipe_user.setsockopt(zmq.LINGER, 0)
        self._pipe_user.connect(address)
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"airlora-{self._kind}-io", daemon=True)

    # --- caller side ---------------------------------------------------------------------------------

    def _start(self, sock: zmq.Socket) -> None:
        self._sock = sock
        self._monitor = sock.get_monitor_socket(_MONITOR_EVENTS)
        self._thread.start()

    def _submit(self, frames: list[bytes]) -> None:
        """Hand frames to the I/O thread (any thread may call this)."""
        with self._pipe_lock:
            self._check_open()
            self._pipe_user.send_multipart([b"S", *frames])

    def _check_open(self) -> None:
        if self._failure is not None:
            raise ControlError(f"the control I/O thread failed: {self._failure!r}")
        if self._closed:
            raise ControlError("the control socket is closed")

    def _take(self, timeout_s: float | None, pick: Callable[[collections.deque[Any]], Any]) -> Any:
        """Wait until pick(inbox) returns something (or the timeout passes -> None)."""
        deadline = None if timeout_s is None else time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                self._check_open()
                item = pick(self._inbox)
                if item is not None:
                    return item
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _deliver(self, item: Any) -> None:
        with self._cond:
            self._inbox.append(item)
            self._cond.notify_all()

    @property
    def stats(self) -> dict[str, int]:
        """Counters: received, sent, rejected, send_dropped, handshake_failed, peers_lost, ..."""
        with self._cond:
            return dict(self._stats)

    def close(self) -> None:
        """Stop the I/O thread, close the sockets (LINGER 0) and the context. Idempotent."""
        with self._pipe_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._pipe_user.send(b"Q", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._pipe_user.close(linger=0)
        self._after_close()
        with self._cond:
            self._cond.notify_all()
        if not self._thread.is_alive():
            self._ctx.term()

    def _after_close(self) -> None:
        """Subclass hook: stop helpers (the ZAP authenticator) once the I/O thread is gone."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- I/O thread --------------------------------------------------------------------------------

    def _tick_s(self) -> float:
        return max(0.005, min(0.05, self.heartbeat_s / 4, self.peer_timeout_s / 10))

    def _run(self) -> None:
        assert self._sock is not None and self._monitor is not None
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._pipe_io, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        tick_s = self._tick_s()
        next_tick = time.monotonic()
        try:
            self._on_start()
            while True:
                wait_ms = max(0, int((next_tick - time.monotonic()) * 1000))
                events = dict(poller.poll(wait_ms))
                if self._pipe_io in events and not self._drain_pipe():
                    return
                if self._sock in events:
                    self._guarded(self._drain_socket)
                if self._monitor in events:
                    self._guarded(self._drain_monitor)
                now = time.monotonic()
                if now >= next_tick:
                    self._guarded(self._tick, now)
                    next_tick = now + tick_s
        except BaseException as exc:  # noqa: BLE001 - reported to callers, never silent
            log.exception("%s I/O thread failed", self._kind)
            self._failure = exc
            with self._cond:
                self._cond.notify_all()
        finally:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
            self._sock.close(linger=0)
            self._pipe_io.close(linger=0)

    def _guarded(self, handler: Callable[..., None], *args: Any) -> None:
        """Run one handler; a bug in handling one event is logged and counted, the loop keeps serving."""
        try:
            handler(*args)
        except (zmq.ContextTerminated, KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001
            self._count("internal_errors")
            log.exception("%s: error while handling an event (the control loop continues)", self._kind)

    def _drain_pipe(self) -> bool:
        """Forward queued outgoing messages; False when asked to quit."""
        while True:
            try:
                frames = self._pipe_io.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if frames[0] == b"Q":
                return False
            self._send_user(frames[1:])

    _copy_frames = True  # False: _on_frames gets zmq.Frame objects (their metadata: the CurveZMQ User-Id)

    def _drain_socket(self) -> None:
        assert self._sock is not None
        for _ in range(_DRAIN_BATCH):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=self._copy_frames)
            except zmq.Again:
                return
            self._on_frames(frames)

    def _drain_monitor(self) -> None:
        assert self._monitor is not None
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_monitor(event)

    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self._stats[key] += n

    def _on_start(self) -> None:
        """Subclass hook run first in the I/O thread."""

    def _send_user(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    def _on_frames(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    def _on_monitor(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def _tick(self, now: float) -> None:
        raise NotImplementedError


def default_identity(role: str) -> Hello:
    """A Hello naming this machine, for callers that do not build their own."""
    return Hello(role=role, node_id=pysocket.gethostname()[:128] or role, software_version=__version__)
