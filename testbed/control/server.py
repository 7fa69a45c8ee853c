"""The edge's side of the control plane: a ROUTER that binds, serves many hosts and never blocks on one.

The edge only tracks hosts that said Hello; anything but Hello/Heartbeat from an unknown peer is
answered with Error(hello_required). At most max_peers hosts are tracked: a Hello beyond that evicts one
that holds no live session (`protect`), preferring unauthenticated hosts to CurveZMQ-authenticated ones
(an unauthenticated newcomer never evicts an authenticated host), then silent ones (no heartbeat for two
intervals), then the one idle longest; only when every tracked host is protected is the Hello refused.
With CurveZMQ a host is its routing id and its key: a message on a known routing id with another key is
a stranger's. Every send is non-blocking (a peer that does not read loses
messages, counted in `stats`); malformed, oversized, multi-frame or unknown messages are refused,
counted and logged (rate-limited) and answered with Error(bad_message); ZMTP handshakes that fail
(garbage on the port, a wrong CurveZMQ key) are logged from a socket monitor. The server never stops
serving because of a peer.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import zmq

from testbed.control.endpoint import (
    HANDSHAKE_FAILED_EVENTS,
    ControlError,
    Endpoint,
    PeerInfo,
    PeerLost,
    default_identity,
    peer_name,
    set_socket_options,
)
from radio.throttle import LogThrottle
from testbed.errors import ConfigError
from testbed.keys import CurveServerKeys, require_curve, server_keys
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
)
from testbed.sections.control import ControlConfig

log = logging.getLogger("testbed.control")


def is_loopback(endpoint: str) -> bool:
    """Whether only this machine can reach a bind address: ipc://, inproc://, or tcp:// on 127.0.0.0/8, ::1 or
    localhost (a wildcard, another address, a host name or an interface name counts as reachable)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0]
    host = host.split(";")[-1].strip("[]")  # a source part (src;addr) and IPv6 brackets
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_insecure_bind(endpoint: str, curve_enabled: bool, allow_insecure_bind: bool, port: str = "control") -> None:
    """ConfigError for a port (the control port, or the IQ cable: port "IQ cable") other machines can reach
    without CurveZMQ, unless explicitly allowed."""
    if curve_enabled or allow_insecure_bind or is_loopback(endpoint):
        return
    harm = "drive this edge" if port == "control" else "feed this edge's receiver their own IQ samples"
    raise ConfigError(f"{port} bind address {endpoint} is reachable from other machines and control.curve.enabled "
                      f"is false: anyone on the network could {harm}; turn CurveZMQ on (`airlora keys`, "
                      "docs/lab_setup.md) or, on an isolated bench, set edge.allow_insecure_bind: true")


class ControlServer(Endpoint):
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
        self._protected: frozenset[bytes] = frozenset()
        self._hello_log = LogThrottle(log)
        self._auth = None
        self._copy_frames = curve is None  # with CurveZMQ: frames, to read each message's User-Id (the key)
        sock = self._ctx.socket(zmq.ROUTER)
        try:
            set_socket_options(sock, max_message_bytes, heartbeat_s, peer_timeout_s)
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
    def from_config(cls, cfg: ControlConfig, identity: Hello | None = None,
                    allow_insecure_bind: bool = False) -> "ControlServer":
        """A server as the `control:` section describes it (binds cfg.bind or cfg.endpoint). A non-loopback
        address with CurveZMQ off is refused (ConfigError) unless allow_insecure_bind (edge.allow_insecure_bind)."""
        refuse_insecure_bind(cfg.bind_endpoint, cfg.curve.enabled, allow_insecure_bind)
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

    def protect(self, peer_ids: Iterable[bytes]) -> None:
        """The hosts never evicted to make room for another (the owner of the edge's live session); replaces
        the previous set."""
        with self._cond:
            self._protected = frozenset(peer_ids)

    def peer_user(self, peer_id: bytes) -> str | None:
        """The CurveZMQ public key (Z85) a tracked host authenticated with; None without CurveZMQ or when the
        host is not tracked."""
        with self._cond:
            info = self._peers.get(peer_id)
            return info.user_id if info is not None else None

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

    def _on_frames(self, frames: list[Any]) -> None:
        user_id = None
        if not self._copy_frames:
            user_id = _user_id(frames[-1])
            frames = [f.bytes for f in frames]
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
            if info is not None and info.user_id != user_id:
                info = None  # the routing id speaks with another key now: a stranger until it says hello
            elif info is not None and not isinstance(msg, Hello):
                active = info.last_active if isinstance(msg, Heartbeat) else now
                self._peers[peer_id] = replace(info, last_seen=now, last_active=active)
        if isinstance(msg, Heartbeat):
            if info is None:
                self._send_msg(peer_id, Error(code=ERR_HELLO_REQUIRED, message="say hello first", req=msg.req))
            else:
                self._send_msg(peer_id, Heartbeat(seq=msg.seq, time_s=time.time(),
                                                  instance=self._identity.instance, req=msg.req))
        elif isinstance(msg, Hello):
            self._on_hello(peer_id, msg, info, now, user_id)
        elif info is None:
            if not isinstance(msg, Bye):
                self._count("refused_no_hello")
                self._send_msg(peer_id, Error(code=ERR_HELLO_REQUIRED,
                                              message=f"say hello before '{msg.type}'", req=msg.req))
        elif isinstance(msg, Bye):
            with self._cond:
                self._peers.pop(peer_id, None)
            self._hello_log.log(logging.INFO, "host %s said bye (%s)", peer_name(peer_id), msg.reason or "no reason")
            self._deliver((peer_id, msg))
        else:
            self._deliver((peer_id, msg))

    def _on_hello(self, peer_id: bytes, msg: Hello, info: PeerInfo | None, now: float, user_id: str | None) -> None:
        reason = None
        if msg.role != "host":
            reason = f"this is an edge; a peer with role '{msg.role}' cannot connect to it"
        elif info is None and peer_id not in self._peers and len(self._peers) >= self.max_peers:
            if not self._evict_one(user_id, now):
                reason = (f"too many hosts connected (control.max_peers = {self.max_peers}) and none of them may "
                          "be evicted (each holds a live session, or is authenticated and this host is not)")
        if reason is None:  # recorded before the ack: a host that holds an ack is tracked
            with self._cond:
                self._peers[peer_id] = PeerInfo(peer_id, msg, info.first_seen if info else now, now, now, user_id)
        fields = self._identity.model_dump(exclude={"type", "version", "req"})
        self._send_msg(peer_id, HelloAck(**fields, accepted=reason is None, reason=reason, req=msg.req))
        if reason is not None:
            self._count("hello_refused")
            self._throttle.log(logging.WARNING, "refused hello from %s: %s", peer_name(peer_id), reason)
            return
        self._hello_log.log(logging.INFO, "host %s (%s, instance %s%s) said hello", msg.node_id, peer_name(peer_id),
                            msg.instance, f", key {user_id[:8]}..." if user_id else "")
        self._deliver((peer_id, msg))

    def _evict_one(self, newcomer_user: str | None, now: float) -> bool:
        """Make room for a newcomer: drop the tracked host that may go first (see the module docstring)."""
        silent_s = 2 * self.heartbeat_s
        with self._cond:
            candidates = [i for p, i in self._peers.items() if p not in self._protected
                          and (newcomer_user is not None or i.user_id is None)]
            if not candidates:
                return False
            victim = min(candidates, key=lambda i: (i.user_id is not None, now - i.last_seen <= silent_s,
                                                    i.last_active))
            del self._peers[victim.peer_id]
            self._stats["peers_evicted"] += 1
        self._throttle.log(logging.WARNING, "host %s (%s) evicted to make room for another (control.max_peers = %d)",
                           victim.hello.node_id, peer_name(victim.peer_id), self.max_peers)
        self._deliver((victim.peer_id, PeerLost(victim.peer_id, "evicted to make room for another host",
                                                now - victim.last_seen)))
        return True

    def _on_monitor(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind & HANDSHAKE_FAILED_EVENTS:
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
            self._throttle.log(logging.WARNING, "host %s (%s) silent for %.1f s: dropped", info.hello.node_id,
                               peer_name(peer_id), silent)
            self._deliver((peer_id, PeerLost(peer_id, f"silent for {silent:.1f} s", silent)))


def _user_id(frame: zmq.Frame) -> str | None:
    """The CurveZMQ User-Id (the sender's public key, Z85) ZAP gave a received frame; None when there is none."""
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        return None
    return user or None
