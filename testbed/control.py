"""The ZeroMQ control-plane transport: the edge's ROUTER server and the host's DEALER client.

Threads: each ControlServer / ControlClient owns a private zmq.Context and one background I/O thread,
the only thread that touches the network socket (zmq sockets are not thread-safe). Callers talk to it
through an inproc PAIR pipe (outgoing messages, guarded by a lock, so `send` may be called from any
thread) and a locked inbox (incoming messages, with a condition variable for `poll`/`recv` timeouts).
Heartbeats therefore keep flowing while the caller is busy (fine-tuning, evaluating).

Liveness: the host sends a Heartbeat every heartbeat_s; the edge answers each one with its own
Heartbeat carrying its instance id. A side that hears nothing from its peer for peer_timeout_s reports a
local `PeerLost` event (never on the wire) in its inbox, and logs it. The edge only tracks hosts that
said Hello; anything but Hello/Heartbeat from an unknown peer is answered with Error(hello_required).

Reconnection: ZeroMQ reconnects TCP by itself (reconnect_s .. reconnect_max_s). The host re-hellos when
the edge answers with hello_required (the edge restarted or dropped it), when a Heartbeat shows a new
edge instance id (a restart), or while it has no live edge (a Hello every heartbeat_s). The host's
DEALER routing id is stable for the life of the client, so the edge sees one peer across reconnections.

Requests: DEALER, never REQ. `request` stamps a fresh request id `req`; the edge echoes it in its
reply; other messages that arrive meanwhile stay queued for `recv`. No answer in time -> PeerTimeout.

Robustness of the edge: every send is non-blocking (a peer that does not read loses messages, counted
in `stats`); malformed, oversized, multi-frame or unknown messages are refused, counted and logged
(rate-limited) and answered with Error(bad_message); ZMTP handshakes that fail (garbage on the port,
a wrong CurveZMQ key) are logged from a socket monitor. The server never stops serving because of a peer.
"""

from __future__ import annotations

import collections
import logging
import os
import socket as pysocket
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

import zmq
from zmq.utils.monitor import recv_monitor_message

from testbed import __version__
from testbed.errors import AirLoraError
from testbed.keys import CurveClientKeys, CurveServerKeys, client_keys, require_curve, server_keys
from testbed.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ERR_BAD_MESSAGE,
    ERR_HELLO_REQUIRED,
    Bye,
    Error,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    ProtocolError,
    decode,
    encode,
    type_name,
)
from testbed.sections.control import ControlConfig

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
    """A host the edge knows: what it said in Hello and when it was last heard (time.monotonic())."""

    peer_id: bytes
    hello: Hello
    first_seen: float
    last_seen: float


def peer_name(peer_id: bytes) -> str:
    """A printable form of a ZeroMQ routing id."""
    try:
        text = peer_id.decode("ascii")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return "0x" + peer_id.hex()


class _Throttle:
    """Rate-limited logging, so a peer flooding garbage cannot flood the log."""

    def __init__(self, rate_per_s: float = 2.0, burst: int = 10) -> None:
        self.rate, self.burst, self.tokens = rate_per_s, burst, float(burst)
        self.stamp = time.monotonic()
        self.suppressed = 0

    def log(self, level: int, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            self.suppressed += 1
            return
        self.tokens -= 1.0
        if self.suppressed:
            fmt, args = fmt + " (%d similar messages suppressed)", (*args, self.suppressed)
            self.suppressed = 0
        log.log(level, fmt, *args)


def _common_options(sock: zmq.Socket, max_message_bytes: int, heartbeat_s: float, peer_timeout_s: float) -> None:
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
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class _Endpoint:
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
        self._throttle = _Throttle()
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

    def _drain_socket(self) -> None:
        assert self._sock is not None
        for _ in range(_DRAIN_BATCH):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
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


class ControlServer(_Endpoint):
    """The edge's control port: a ROUTER that binds, serves many hosts and never blocks on one."""

    _kind = "control-server"

    def __init__(self, endpoint: str, identity: Hello | None = None, *, curve: CurveServerKeys | None = None,
                 heartbeat_s: float = 1.0, peer_timeout_s: float = 5.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_peers: int = 16) -> None:
        identity = identity or default_identity("edge")
        if identity.role != "edge":
            raise ControlError("a ControlServer's identity must have role 'edge'")
        super().__init__(max_message_bytes, heartbeat_s, peer_timeout_s)
        self._identity = identity
        self.max_peers = max_peers
        self._peers: dict[bytes, PeerInfo] = {}
        self._auth = None
        sock = self._ctx.socket(zmq.ROUTER)
        try:
            _common_options(sock, max_message_bytes, heartbeat_s, peer_timeout_s)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a gone peer fails instead of vanishing
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting host takes over its routing id
            if curve is not None:
                require_curve()
                from zmq.auth.thread import ThreadAuthenticator

                self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger("testbed.control.auth"))
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(curve.authorized_dir))
                sock.curve_secretkey = curve.secret
                sock.curve_publickey = curve.public
                sock.curve_server = True
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._abort()
            raise ControlError(f"cannot bind the control port {endpoint}: {exc.strerror}") from None
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.curve = curve is not None
        self._start(sock)
        log.info("control server on %s (CurveZMQ %s)", self.endpoint, "on" if curve else "off")

    @classmethod
    def from_config(cls, cfg: ControlConfig, identity: Hello | None = None) -> "ControlServer":
        """A server as the `control:` section describes it (binds cfg.bind or cfg.endpoint)."""
        curve = server_keys(cfg.curve) if cfg.curve.enabled else None
        return cls(cfg.bind_endpoint, identity, curve=curve, heartbeat_s=cfg.heartbeat_s,
                   peer_timeout_s=cfg.peer_timeout_s, max_message_bytes=cfg.max_message_bytes,
                   max_peers=cfg.max_peers)

    def _abort(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self._pipe_io.close(linger=0)
        self._pipe_user.close(linger=0)
        self._closed = True
        self._ctx.term()

    def _after_close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    @property
    def port(self) -> int:
        """The TCP port bound (useful after binding port 0 / '*')."""
        return int(self.endpoint.rsplit(":", 1)[1])

    @property
    def identity(self) -> Hello:
        """What this edge tells hosts in HelloAck (and its instance id in Heartbeats)."""
        return self._identity

    def set_identity(self, identity: Hello) -> None:
        """Change what later HelloAcks say (e.g. a new adapter was installed); keeps the instance id."""
        self._identity = identity.model_copy(update={"instance": self._identity.instance, "role": "edge"})

    # caller API

    def poll(self, timeout_s: float | None = 0.0) -> tuple[bytes, Message | PeerLost] | None:
        """The next (peer_id, message) from a host, or (peer_id, PeerLost); None after timeout_s."""
        return self._take(timeout_s, lambda inbox: inbox.popleft() if inbox else None)

    def send(self, peer_id: bytes, msg: Message) -> None:
        """Queue msg to one host (never blocks; dropped and counted if the host does not read)."""
        self._submit([peer_id, encode(msg, self.max_message_bytes)])

    def reply(self, peer_id: bytes, request: Message, msg: Message) -> None:
        """Send msg as the answer to request (echoes its request id)."""
        self.send(peer_id, msg.model_copy(update={"req": request.req}))

    def peers_alive(self) -> dict[bytes, PeerInfo]:
        """The hosts that said Hello and were heard within peer_timeout_s."""
        with self._cond:
            return dict(self._peers)

    # I/O thread

    def _send_raw(self, peer_id: bytes, data: bytes) -> bool:
        assert self._sock is not None
        try:
            self._sock.send_multipart([peer_id, data], zmq.NOBLOCK)
        except zmq.Again:
            self._count("send_dropped")
            self._throttle.log(logging.WARNING, "host %s is not reading; dropped a message", peer_name(peer_id))
            return False
        except zmq.ZMQError as exc:
            self._count("send_dropped")
            self._throttle.log(logging.INFO, "cannot send to %s (%s); dropped", peer_name(peer_id), exc.strerror)
            return False
        self._count("sent")
        return True

    def _send_msg(self, peer_id: bytes, msg: Message) -> None:
        self._send_raw(peer_id, encode(msg))

    def _send_user(self, frames: list[bytes]) -> None:
        self._send_raw(frames[0], frames[1])

    def _reject(self, peer_id: bytes, reason: str) -> None:
        self._count("rejected")
        self._throttle.log(logging.WARNING, "refused a message from %s: %s", peer_name(peer_id), reason)
        self._send_msg(peer_id, Error(code=ERR_BAD_MESSAGE, message=reason[:1000]))

    def _on_frames(self, frames: list[bytes]) -> None:
        peer_id = frames[0]
        if len(frames) != 2:
            self._reject(peer_id, f"expected 1 message frame, got {len(frames) - 1}")
            return
        try:
            msg = decode(frames[1], self.max_message_bytes)
        except ProtocolError as exc:
            self._reject(peer_id, str(exc))
            return
        self._count("received")
        now = time.monotonic()
        with self._cond:
            info = self._peers.get(peer_id)
            if info is not None and not isinstance(msg, Hello):
                self._peers[peer_id] = replace(info, last_seen=now)
        if isinstance(msg, Heartbeat):
            if info is None:
                self._send_msg(peer_id, Error(code=ERR_HELLO_REQUIRED, message="say hello first", req=msg.req))
            else:
                self._send_msg(peer_id, Heartbeat(seq=msg.seq, time_s=time.time(),
                                                  instance=self._identity.instance, req=msg.req))
        elif isinstance(msg, Hello):
            self._on_hello(peer_id, msg, info, now)
        elif info is None:
            if not isinstance(msg, Bye):
                self._count("refused_no_hello")
                self._send_msg(peer_id, Error(code=ERR_HELLO_REQUIRED,
                                              message=f"say hello before '{msg.type}'", req=msg.req))
        elif isinstance(msg, Bye):
            with self._cond:
                self._peers.pop(peer_id, None)
            log.info("host %s said bye (%s)", peer_name(peer_id), msg.reason or "no reason")
            self._deliver((peer_id, msg))
        else:
            self._deliver((peer_id, msg))

    def _on_hello(self, peer_id: bytes, msg: Hello, info: PeerInfo | None, now: float) -> None:
        reason = None
        if msg.role != "host":
            reason = f"this is an edge; a peer with role '{msg.role}' cannot connect to it"
        elif info is None and len(self._peers) >= self.max_peers:
            reason = f"too many hosts connected (control.max_peers = {self.max_peers})"
        fields = self._identity.model_dump(exclude={"type", "version", "req"})
        self._send_msg(peer_id, HelloAck(**fields, accepted=reason is None, reason=reason, req=msg.req))
        if reason is not None:
            self._count("hello_refused")
            self._throttle.log(logging.WARNING, "refused hello from %s: %s", peer_name(peer_id), reason)
            return
        with self._cond:
            self._peers[peer_id] = PeerInfo(peer_id, msg, info.first_seen if info else now, now)
        log.info("host %s (%s, instance %s) said hello", msg.node_id, peer_name(peer_id), msg.instance)
        self._deliver((peer_id, msg))

    def _on_monitor(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind & _HANDSHAKE_FAILED:
            self._count("handshake_failed")
            what = "CurveZMQ authentication" if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "ZMTP handshake"
            self._throttle.log(logging.WARNING, "refused a connection: %s failed (code %s)", what, event["value"])
        elif kind == zmq.EVENT_ACCEPTED:
            self._count("connections")
            log.debug("accepted a TCP connection on %s", self.endpoint)

    def _tick(self, now: float) -> None:
        lost = []
        with self._cond:
            for peer_id, info in list(self._peers.items()):
                silent = now - info.last_seen
                if silent > self.peer_timeout_s:
                    del self._peers[peer_id]
                    self._stats["peers_lost"] += 1
                    lost.append((peer_id, info, silent))
        for peer_id, info, silent in lost:
            log.warning("host %s (%s) silent for %.1f s: dropped", info.hello.node_id, peer_name(peer_id), silent)
            self._deliver((peer_id, PeerLost(peer_id, f"silent for {silent:.1f} s", silent)))


class ControlClient(_Endpoint):
    """The host's side: a DEALER that connects to the edge, says hello, heartbeats and re-hellos."""

    _kind = "control-client"

    def __init__(self, endpoint: str, hello: Hello | None = None, *, curve: CurveClientKeys | None = None,
                 heartbeat_s: float = 1.0, peer_timeout_s: float = 5.0, request_timeout_s: float = 10.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, reconnect_s: float = 0.1,
                 reconnect_max_s: float = 2.0) -> None:
        hello = hello or default_identity("host")
        if hello.role != "host":
            raise ControlError("a ControlClient's hello must have role 'host'")
        super().__init__(max_message_bytes, heartbeat_s, peer_timeout_s)
        self.endpoint = endpoint
        self.request_timeout_s = float(request_timeout_s)
        self.hello = hello
        self._peer_hello: HelloAck | None = None
        self._ready = False
        self._last_recv: float | None = None
        self._lost_reported = False
        self._losses = 0  # bumped on every loss, so a waiting request can give up early
        self._next_req = 0
        self._beat_seq = 0
        self._next_beat = 0.0
        self._next_hello = 0.0
        sock = self._ctx.socket(zmq.DEALER)
        try:
            _common_options(sock, max_message_bytes, heartbeat_s, peer_timeout_s)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # nothing queues for a dead connection; stale sends are dropped
            sock.setsockopt(zmq.RECONNECT_IVL, max(1, int(reconnect_s * 1000)))
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(1, int(reconnect_max_s * 1000)))
            sock.setsockopt(zmq.CONNECT_TIMEOUT, max(1, int(peer_timeout_s * 1000)))
            sock.setsockopt(zmq.ROUTING_ID, f"host-{self.hello.instance}".encode())
            if curve is not None:
                require_curve()
                sock.curve_secretkey = curve.secret
                sock.curve_publickey = curve.public
                sock.curve_serverkey = curve.server_public
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._pipe_io.close(linger=0)
            self._pipe_user.close(linger=0)
            self._closed = True
            self._ctx.term()
            raise ControlError(f"cannot connect to the edge at {endpoint}: {exc.strerror}") from None
        self.curve = curve is not None
        self._start(sock)

    @classmethod
    def from_config(cls, cfg: ControlConfig, hello: Hello | None = None) -> "ControlClient":
        """A client as the `control:` section describes it (connects to cfg.endpoint)."""
        curve = client_keys(cfg.curve) if cfg.curve.enabled else None
        return cls(cfg.endpoint, hello, curve=curve, heartbeat_s=cfg.heartbeat_s,
                   peer_timeout_s=cfg.peer_timeout_s, request_timeout_s=cfg.request_timeout_s,
                   max_message_bytes=cfg.max_message_bytes, reconnect_s=cfg.reconnect_s,
                   reconnect_max_s=cfg.reconnect_max_s)

    # caller API

    @property
    def peer_alive(self) -> bool:
        """True while the edge accepted our hello and was heard within peer_timeout_s."""
        with self._cond:
            return (self._ready and self._last_recv is not None
                    and time.monotonic() - self._last_recv <= self.peer_timeout_s)

    @property
    def peer_hello(self) -> HelloAck | None:
        """The edge's latest HelloAck (its identity, base model, installed adapter)."""
        with self._cond:
            return self._peer_hello

    def wait_ready(self, timeout_s: float | None = None) -> HelloAck:
        """Block until the edge has accepted our hello; PeerTimeout otherwise."""
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._ready and self._peer_hello is not None):
                self._check_open()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    refused = self._peer_hello is not None and not self._peer_hello.accepted
                    if refused:
                        raise PeerTimeout(f"the edge at {self.endpoint} refused this host: {self._peer_hello.reason}")
                    raise PeerTimeout(
                        f"no answer to hello from the edge at {self.endpoint} within {timeout:.1f} s "
                        "(is the edge running and reachable? with CurveZMQ: is this host's key authorized "
                        "and control.curve.server_public_key the edge's key?)")
                self._cond.wait(remaining)
            return self._peer_hello

    def send(self, msg: Message) -> None:
        """Queue msg to the edge (dropped and counted while no connection is up)."""
        self._submit([encode(msg, self.max_message_bytes)])

    def recv(self, timeout_s: float | None = 0.0) -> Message | PeerLost | None:
        """The next message from the edge (or a PeerLost event); None after timeout_s."""
        return self._take(timeout_s, lambda inbox: inbox.popleft() if inbox else None)

    def request(self, msg: Message, expect_types: Iterable[str | type[Message]] | str | type[Message],
                timeout_s: float | None = None) -> Message:
        """Send msg with a fresh request id and wait for the edge's reply of one of expect_types.

        Raises PeerTimeout when nothing answers within timeout_s (default request_timeout_s) or the edge
        vanishes meanwhile, RemoteError when the edge answers with an Error. Other messages stay queued.
        """
        if isinstance(expect_types, (str, type)):
            expect_types = [expect_types]
        expect = {type_name(t) for t in expect_types}
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        if not isinstance(msg, Hello):
            # Sent before the edge accepted our hello, a request would be dropped or refused: wait first.
            try:
                self.wait_ready(timeout)
            except PeerTimeout as exc:
                raise PeerTimeout(f"cannot send '{msg.type}': {exc}") from None
        with self._cond:
            self._next_req = self._next_req % (2**32 - 1) + 1
            rid = self._next_req
            losses = self._losses
        self.send(msg.model_copy(update={"req": rid}))

        def pick(inbox: collections.deque[Any]) -> Message | None:
            for i, item in enumerate(inbox):
                if isinstance(item, Message) and item.req == rid and (item.type in expect or item.type == "error"):
                    del inbox[i]
                    return item
            if self._losses != losses:
                raise PeerTimeout(f"the edge at {self.endpoint} vanished or restarted while waiting for "
                                  f"{'/'.join(sorted(expect))} (request '{msg.type}')")
            return None

        reply = self._take(deadline - time.monotonic(), pick)
        if reply is None:
            raise PeerTimeout(f"no {'/'.join(sorted(expect))} from the edge at {self.endpoint} within "
                              f"{timeout:.1f} s (request '{msg.type}'; edge alive: {self.peer_alive})")
        if isinstance(reply, Error) and "error" not in expect:
            raise RemoteError(reply.code, reply.message)
        return reply

    # I/O thread

    def _send_raw(self, data: bytes, what: str, user: bool) -> bool:
        assert self._sock is not None
        try:
            self._sock.send(data, zmq.NOBLOCK)
        except zmq.Again:
            self._count("send_dropped")
            if user:
                self._throttle.log(logging.WARNING, "no connection to the edge at %s: dropped '%s'",
                                   self.endpoint, what)
            return False
        self._count("sent")
        return True

    def _send_user(self, frames: list[bytes]) -> None:
        self._send_raw(frames[0], "message", user=True)

    def _send_hello(self, now: float) -> None:
        self._next_hello = now + self.heartbeat_s
        self._next_beat = now + self.heartbeat_s
        self._send_raw(encode(self.hello), "hello", user=False)

    def _on_start(self) -> None:
        self._send_hello(time.monotonic())

    def _mark_lost(self, reason: str, silent_s: float) -> None:
        """Once per loss: not ready any more, a PeerLost event, a log line (caller holds no lock)."""
        with self._cond:
            self._ready = False
            if self._lost_reported:
                return
            self._lost_reported = True
            self._losses += 1
            self._stats["peers_lost"] += 1
            self._inbox.append(PeerLost(b"", reason, silent_s))
            self._cond.notify_all()
        log.warning("edge at %s lost: %s", self.endpoint, reason)

    def _on_frames(self, frames: list[bytes]) -> None:
        now = time.monotonic()
        if len(frames) != 1:
            self._count("rejected")
            self._throttle.log(logging.WARNING, "refused a %d-frame message from the edge", len(frames))
            return
        try:
            msg = decode(frames[0], self.max_message_bytes)
        except ProtocolError as exc:
            self._count("rejected")
            self._throttle.log(logging.WARNING, "refused a message from the edge: %s", exc)
            return
        with self._cond:
            self._stats["received"] += 1
            self._last_recv = now
            known = self._peer_hello.instance if self._peer_hello is not None else None
        if isinstance(msg, Heartbeat):
            if known is not None and msg.instance != known:
                self._mark_lost(f"the edge restarted (instance {known} -> {msg.instance})", 0.0)
                self._send_hello(now)
            return
        if isinstance(msg, HelloAck):
            if known is not None and msg.instance != known:
                self._mark_lost(f"the edge restarted (instance {known} -> {msg.instance})", 0.0)
            with self._cond:
                self._peer_hello = msg
                self._ready = msg.accepted
                if msg.accepted:
                    self._lost_reported = False
            if msg.accepted:
                log.info("edge %s at %s accepted hello (instance %s)", msg.node_id, self.endpoint, msg.instance)
            else:
                log.error("edge %s at %s refused hello: %s", msg.node_id, self.endpoint, msg.reason)
                self._next_hello = now + self.peer_timeout_s
            self._deliver(msg)
            return
        if isinstance(msg, Error) and msg.code == ERR_HELLO_REQUIRED:
            with self._cond:
                was_ready, self._ready = self._ready, False
            if was_ready:
                log.info("the edge at %s forgot this host; saying hello again", self.endpoint)
            if now >= self._next_hello - self.heartbeat_s / 2:
                self._send_hello(now)
            if msg.req == 0:
                return
        self._deliver(msg)

    def _on_monitor(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            log.debug("connected to the edge at %s", self.endpoint)
            self._send_hello(time.monotonic())  # say hello at once on every (re)connection
        elif kind == zmq.EVENT_DISCONNECTED:
            log.info("TCP connection to the edge at %s closed; ZeroMQ reconnects", self.endpoint)
        elif kind & _HANDSHAKE_FAILED:
            self._count("handshake_failed")
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._throttle.log(logging.ERROR, "the edge at %s refused this host's CurveZMQ key "
                                   "(ZAP status %s)", self.endpoint, event["value"])
            else:
                self._throttle.log(logging.WARNING, "handshake with %s failed (code %s): wrong server key, "
                                   "or not an airlora edge?", self.endpoint, event["value"])

    def _tick(self, now: float) -> None:
        with self._cond:
            ready, last = self._ready, self._last_recv
        if last is not None and now - last > self.peer_timeout_s:
            self._mark_lost(f"no message from the edge for {now - last:.1f} s", now - last)
        if ready:
            if now >= self._next_beat:
                self._next_beat = now + self.heartbeat_s
                self._beat_seq += 1
                beat = Heartbeat(seq=self._beat_seq, time_s=time.time(), instance=self.hello.instance)
                self._send_raw(encode(beat), "heartbeat", user=False)
        elif now >= self._next_hello:
            self._send_hello(now)
