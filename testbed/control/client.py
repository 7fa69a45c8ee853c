"""The host's side of the control plane: a DEALER that connects to the edge, says hello and heartbeats.

Reconnection: ZeroMQ reconnects TCP by itself (reconnect_s .. reconnect_max_s). The host re-hellos when
the edge answers with hello_required (the edge restarted or dropped it), when a Heartbeat shows a new
edge instance id (a restart), or while it has no live edge (a Hello every heartbeat_s). The host's
DEALER routing id is stable for the life of the client, so the edge sees one peer across reconnections.

Requests: DEALER, never REQ. `request` stamps a fresh request id `req`; the edge echoes it in its
reply; other messages that arrive meanwhile stay queued for `recv`. No answer in time -> PeerTimeout.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Iterable

import zmq

from testbed.control.endpoint import (
    HANDSHAKE_FAILED_EVENTS,
    ControlError,
    Endpoint,
    PeerLost,
    PeerTimeout,
    RemoteError,
    default_identity,
    set_socket_options,
)
from testbed.keys import CurveClientKeys, client_keys, require_curve
from testbed.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ERR_HELLO_REQUIRED,
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


class ControlClient(Endpoint):
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
            set_socket_options(sock, max_message_bytes, heartbeat_s, peer_timeout_s)
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
        elif kind & HANDSHAKE_FAILED_EVENTS:
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
