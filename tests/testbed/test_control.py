"""The control-plane transport over tcp://127.0.0.1: requests, heartbeats, loss, restart, strangers, CurveZMQ."""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlora import cli
from testbed.config import validate
from testbed.control.client import ControlClient
from testbed.control.endpoint import ControlError, PeerLost, PeerTimeout, RemoteError
from testbed.control.server import ControlServer
from testbed.keys import CurveKeyError, authorize, client_keys, server_keys, write_keypair
from testbed.messages import (
    MESSAGE_TYPES,
    Bye,
    Error,
    Heartbeat,
    Hello,
    HelloAck,
    ProtocolError,
    SessionAck,
    SessionStart,
    decode,
    encode,
)
from testbed.sections.control import ControlConfig, CurveConfig

HEARTBEAT_S = 0.05
PEER_TIMEOUT_S = 0.4
TIMING = dict(heartbeat_s=HEARTBEAT_S, peer_timeout_s=PEER_TIMEOUT_S)
SHA = "cd" * 32


def start(session: int = 1) -> SessionStart:
    return SessionStart(session=session, payload_bytes=4096, packet_count=4, packet_payload_bytes=1024,
                        mcs="qpsk-1/2", payload_sha256=SHA, deadline_s=10.0, sample_rate_hz=1e6, backend="sim")


def edge_identity(node_id: str = "edge-test") -> Hello:
    return Hello(role="edge", node_id=node_id, software_version="0.1.0", capabilities=["apply"])


class EchoEdge:
    """A server's poll loop in a thread: answers session_start, refuses session 13, records the rest."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.seen: list[tuple[bytes, object]] = []
        self.lost: list[tuple[float, PeerLost]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self.server.poll(0.02)
            if item is None:
                continue
            peer, msg = item
            if isinstance(msg, PeerLost):
                self.lost.append((time.monotonic(), msg))
            elif isinstance(msg, SessionStart) and msg.session == 13:
                self.server.reply(peer, msg, Error(code="busy", message="session 13 is unlucky"))
            elif isinstance(msg, SessionStart):
                self.server.reply(peer, msg, SessionAck(session=msg.session, ready=True))
            self.seen.append((peer, msg))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()


def wait_for(predicate, timeout_s: float = 3.0, step_s: float = 0.01) -> float:
    """Seconds until predicate() is true; fails the test after timeout_s."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - t0


def next_event(client: ControlClient, kind: type, timeout_s: float = 3.0):
    """The next item of this kind from client.recv (others are skipped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = client.recv(0.05)
        if isinstance(item, kind):
            return item
    raise AssertionError(f"no {kind.__name__} within {timeout_s} s")


@pytest.fixture
def edge():
    e = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity(), **TIMING))
    yield e
    e.close()


@pytest.fixture
def client(edge: EchoEdge):
    c = ControlClient(edge.server.endpoint, **TIMING, request_timeout_s=2.0)
    yield c
    c.close()


def test_hello_then_request_response(edge: EchoEdge, client: ControlClient) -> None:
    ack = client.wait_ready(2.0)
    assert isinstance(ack, HelloAck) and ack.node_id == "edge-test" and ack.accepted
    assert ack.instance == edge.server.identity.instance
    reply = client.request(start(5), SessionAck)
    assert reply == SessionAck(session=5, ready=True, req=reply.req) and reply.req > 0
    assert client.request(start(6), ["session_ack"]).session == 6
    hosts = edge.server.peers_alive()
    assert len(hosts) == 1 and next(iter(hosts.values())).hello.instance == client.hello.instance
    assert isinstance(next_event(client, HelloAck), HelloAck)  # the hello ack also reached recv()


def test_error_reply_raises_remote_error(edge: EchoEdge, client: ControlClient) -> None:
    client.wait_ready(2.0)
    with pytest.raises(RemoteError, match="busy: session 13 is unlucky"):
        client.request(start(13), SessionAck)
    assert client.request(start(13), [SessionAck, Error]).code == "busy"


def test_no_answer_is_a_peer_timeout() -> None:
    server = ControlServer("tcp://127.0.0.1:*", edge_identity(), **TIMING)  # nobody polls: no session_ack
    with ControlClient(server.endpoint, **TIMING) as client:
        client.wait_ready(2.0)
        t0 = time.monotonic()
        with pytest.raises(PeerTimeout, match="no session_ack from the edge"):
            client.request(start(), SessionAck, timeout_s=0.3)
        assert 0.25 < time.monotonic() - t0 < 1.0
    server.close()
    with ControlClient("tcp://127.0.0.1:1", **TIMING) as client:  # nothing listens there
        with pytest.raises(PeerTimeout, match="no answer to hello"):
            client.wait_ready(0.3)
        with pytest.raises(PeerTimeout):
            client.request(start(), SessionAck, timeout_s=0.2)


def test_heartbeats_keep_both_sides_alive(edge: EchoEdge, client: ControlClient) -> None:
    client.wait_ready(2.0)
    time.sleep(4 * PEER_TIMEOUT_S)  # no traffic from the callers at all
    assert client.peer_alive
    assert len(edge.server.peers_alive()) == 1
    assert edge.lost == []
    assert client.stats["received"] > 10 and edge.server.stats["sent"] > 10


def test_server_notices_a_vanished_client(edge: EchoEdge) -> None:
    client = ControlClient(edge.server.endpoint, **TIMING)
    client.wait_ready(2.0)
    wait_for(lambda: len(edge.server.peers_alive()) == 1)
    t0 = time.monotonic()
    client.close()
    wait_for(lambda: edge.lost, timeout_s=PEER_TIMEOUT_S + 1.0)
    noticed_s = edge.lost[0][0] - t0
    assert PEER_TIMEOUT_S * 0.8 < noticed_s < PEER_TIMEOUT_S + 1.0
    assert edge.lost[0][1].peer_id == f"host-{client.hello.instance}".encode()
    assert edge.server.peers_alive() == {} and edge.server.stats["peers_lost"] == 1


def test_client_notices_a_vanished_server_and_reconnects_to_a_restarted_one() -> None:
    server = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity("first"), **TIMING))
    port, old_instance = server.server.port, server.server.identity.instance
    client = ControlClient(server.server.endpoint, **TIMING, request_timeout_s=2.0)
    try:
        client.wait_ready(2.0)
        assert client.request(start(1), SessionAck).session == 1
        t0 = time.monotonic()
        server.close()
        lost = next_event(client, PeerLost, timeout_s=PEER_TIMEOUT_S + 1.0)
        assert time.monotonic() - t0 < PEER_TIMEOUT_S + 1.0 and "no message from the edge" in lost.reason
        assert not client.peer_alive
        with pytest.raises(PeerTimeout):
            client.request(start(2), SessionAck, timeout_s=0.2)

        server = EchoEdge(ControlServer(f"tcp://127.0.0.1:{port}", edge_identity("second"), **TIMING))
        ack = next_event(client, HelloAck, timeout_s=3.0)  # the same client object says hello again
        assert ack.node_id == "second" and ack.instance != old_instance
        assert client.peer_alive and client.peer_hello == ack
        assert client.request(start(3), SessionAck).session == 3
    finally:
        client.close()
        server.close()


def test_fast_restart_is_noticed_by_the_instance_id(edge: EchoEdge, client: ControlClient) -> None:
    client.wait_ready(2.0)
    port = edge.server.port
    edge.close()
    edge.server = ControlServer(f"tcp://127.0.0.1:{port}", edge_identity("reborn"), **TIMING)  # closed by fixture
    restarted = EchoEdge(edge.server)
    lost = next_event(client, PeerLost, timeout_s=2.0)
    assert "restarted" in lost.reason or "no message" in lost.reason
    assert next_event(client, HelloAck, timeout_s=2.0).node_id == "reborn"
    assert client.request(start(4), SessionAck).session == 4
    restarted._stop.set()
    restarted._thread.join(2)


def test_strangers_are_refused_and_the_server_keeps_serving(edge: EchoEdge, client: ControlClient,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="testbed.control")
    client.wait_ready(2.0)
    port = edge.server.port
    ctx = zmq.Context()
    stranger = ctx.socket(zmq.DEALER)
    stranger.linger = 0
    stranger.connect(edge.server.endpoint)
    rng = __import__("random").Random(4)
    for _ in range(50):
        frames = [rng.randbytes(rng.randint(0, 64)) for _ in range(rng.randint(1, 3))]
        stranger.send_multipart(frames)
    stranger.send(encode(start(9)))  # valid, but no hello first
    stranger.send(b"\x81\xa4type\xa6hello")  # a map without version
    # Raw TCP garbage, and a connection that never says anything.
    raw = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    for s in raw:
        s.sendall(os.urandom(512))
    silent = socket.create_connection(("127.0.0.1", port))
    wait_for(lambda: edge.server.stats.get("rejected", 0) >= 40)
    replies = []
    while stranger.poll(500):
        replies.append(decode(stranger.recv()))
        if any(r.code == "hello_required" for r in replies):
            break
    assert any(isinstance(r, Error) and r.code == "bad_message" for r in replies)
    assert any(isinstance(r, Error) and r.code == "hello_required" for r in replies)
    assert client.request(start(8), SessionAck).session == 8  # the real host is still served
    assert len(edge.server.peers_alive()) == 1 and edge.server.stats.get("refused_no_hello", 0) == 1
    assert "refused a message from" in caplog.text
    for s in [*raw, silent]:
        s.close()
    stranger.close()
    ctx.term()
    assert client.request(start(10), SessionAck).session == 10


def test_oversized_frame_drops_only_that_sender() -> None:
    server = ControlServer("tcp://127.0.0.1:*", edge_identity(), **TIMING, max_message_bytes=4096)
    other = EchoEdge(server)
    try:
        with ControlClient(server.endpoint, **TIMING, max_message_bytes=4096) as small:
            small.wait_ready(2.0)
            ctx = zmq.Context()
            big = ctx.socket(zmq.DEALER)
            big.linger = 0
            big.connect(server.endpoint)
            big.send(b"\x00" * 100_000)
            time.sleep(0.2)
            assert small.request(start(1), SessionAck).session == 1
            with pytest.raises(ProtocolError, match="over max_message_bytes 4096"):
                small.send(SessionAck(session=1, ready=False, reason="y" * 1000).model_copy(
                    update={"reason": "y" * 5000}))
            big.close()
            ctx.term()
    finally:
        other.close()


def test_max_peers_evicts_an_idle_host_and_refuses_only_when_every_host_is_protected() -> None:
    server = ControlServer("tcp://127.0.0.1:*", edge_identity(), **TIMING, max_peers=1)
    first = ControlClient(server.endpoint, **TIMING)
    first.wait_ready(2.0)
    first_id = next(iter(server.peers_alive()))
    server.protect([first_id])  # the owner of a live session
    second = ControlClient(server.endpoint, **TIMING)
    try:
        with pytest.raises(PeerTimeout, match="too many hosts"):
            second.wait_ready(0.5)
        assert list(server.peers_alive()) == [first_id] and first.peer_alive
        server.protect([])  # the session ended: the next hello of the second host evicts the idle first one
        first.close()  # (a first host still heartbeating would say hello again and evict the second in turn)
        second.wait_ready(2.0)
        # the silent first host is gone (evicted by the hello, or timed out first if the machine is slow)
        assert first_id not in server.peers_alive() and len(server.peers_alive()) == 1
        with pytest.raises(ControlError, match="role 'host'"):
            ControlClient(server.endpoint, Hello(role="edge", node_id="x", software_version="1"))
    finally:
        first.close()
        second.close()
        server.close()


def test_bye_forgets_the_host(edge: EchoEdge, client: ControlClient) -> None:
    client.wait_ready(2.0)
    wait_for(lambda: len(edge.server.peers_alive()) == 1)
    client.send(Bye(reason="done"))
    wait_for(lambda: any(isinstance(m, Bye) for _, m in edge.seen))


def test_bind_conflict_is_a_clear_error(edge: EchoEdge) -> None:
    with pytest.raises(ControlError, match=f"cannot bind the control port tcp://127.0.0.1:{edge.server.port}"):
        ControlServer(f"tcp://127.0.0.1:{edge.server.port}")


def test_heartbeat_from_an_unknown_peer_asks_for_hello(edge: EchoEdge) -> None:
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    raw.connect(edge.server.endpoint)
    raw.send(encode(Heartbeat(seq=1, time_s=time.time(), instance="0123abcd")))
    assert raw.poll(2000)
    assert decode(raw.recv()).code == "hello_required"
    raw.close()
    ctx.term()


# --- CurveZMQ --------------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    assert zmq.has("curve")
    assert cli.main(["keys", "--out", str(tmp_path)]) == 0
    return tmp_path


def test_keys_command_writes_pairs_with_private_secrets(keys: Path, capsys: pytest.CaptureFixture) -> None:
    for name in ("edge", "host"):
        assert stat.S_IMODE((keys / f"{name}.key_secret").stat().st_mode) == 0o600
        assert "secret-key" not in (keys / f"{name}.key").read_text()
        assert "secret-key" in (keys / f"{name}.key_secret").read_text()
    assert (keys / "authorized" / "host.key").read_text() == (keys / "host.key").read_text()
    assert cli.main(["keys", "--out", str(keys), "--name", "host"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["keys", "--out", str(keys), "--name", "host2", "--json"]) == 0


def test_curve_allowed_key_works_unknown_key_is_refused(keys: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    curve = CurveConfig(enabled=True, keys_dir=str(keys))
    server = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity(), curve=server_keys(curve), **TIMING))
    try:
        with ControlClient(server.server.endpoint, curve=client_keys(curve), **TIMING) as good:
            good.wait_ready(3.0)
            assert good.request(start(1), SessionAck).session == 1
        write_keypair(keys / "stranger", "host")
        stranger = CurveConfig(enabled=True, keys_dir=str(keys / "stranger"), server_public_key=str(keys / "edge.key"))
        with ControlClient(server.server.endpoint, curve=client_keys(stranger), **TIMING) as bad:
            with pytest.raises(PeerTimeout):
                bad.request(start(2), SessionAck, timeout_s=0.6)
            assert not bad.peer_alive
        with ControlClient(server.server.endpoint, **TIMING) as plain:  # no CurveZMQ at all
            with pytest.raises(PeerTimeout):
                plain.wait_ready(0.5)
        wait_for(lambda: server.server.stats.get("handshake_failed", 0) >= 2)
        assert "CurveZMQ authentication failed" in caplog.text
        assert [m for _, m in server.seen if isinstance(m, SessionStart)] == [start(1).model_copy(
            update={"req": 1})]
    finally:
        server.close()
    # Authorize the stranger's key and restart the edge: now it gets in.
    authorize(keys / "stranger" / "host.key", keys / "authorized")
    server = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity(), curve=server_keys(curve), **TIMING))
    try:
        with ControlClient(server.server.endpoint, curve=client_keys(stranger), **TIMING) as now_known:
            assert now_known.request(start(3), SessionAck, timeout_s=2.0).session == 3
    finally:
        server.close()


def test_curve_missing_key_files_are_named(tmp_path: Path) -> None:
    curve = CurveConfig(enabled=True, keys_dir=str(tmp_path))
    with pytest.raises(CurveKeyError, match=f"not found: {tmp_path}/edge.key_secret"):
        server_keys(curve)
    with pytest.raises(CurveKeyError, match=f"not found: {tmp_path}/host.key_secret"):
        client_keys(curve)
    write_keypair(tmp_path, "edge")
    with pytest.raises(CurveKeyError, match="authorized keys directory not found"):
        server_keys(curve)
    (tmp_path / "authorized").mkdir()
    with pytest.raises(CurveKeyError, match="no authorized host keys"):
        server_keys(curve)
    with pytest.raises(CurveKeyError, match="holds no secret-key"):
        server_keys(CurveConfig(enabled=True, keys_dir=str(tmp_path), server_secret_key=str(tmp_path / "edge.key")))


def test_curve_refused_without_libsodium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zmq, "has", lambda feature: False)
    with pytest.raises(CurveKeyError, match="without CURVE support"):
        server_keys(CurveConfig(enabled=True, keys_dir=str(tmp_path)))


# --- config ------------------------------------------------------------------------------------------


def test_control_config_section() -> None:
    cfg = validate({}).control
    assert cfg.endpoint == "tcp://127.0.0.1:5555" and cfg.bind_endpoint == cfg.endpoint
    assert not cfg.curve.enabled
    assert cfg.curve.server_public_path() == Path("~/.config/airlora/keys/edge.key").expanduser()
    with pytest.raises(Exception, match="control.peer_timeout_s"):
        validate({"control": {"heartbeat_s": 2.0, "peer_timeout_s": 3.0}})
    with pytest.raises(Exception, match="control.endpoint"):
        validate({"control": {"endpoint": "localhost:5555"}})
    with pytest.raises(Exception, match="unknown key 'control.curve.secret'"):
        validate({"control": {"curve": {"secret": "x"}}})
    cfg = ControlConfig(bind="tcp://*:6000", endpoint="tcp://10.0.0.2:6000", heartbeat_s=0.05, peer_timeout_s=0.4)
    assert cfg.bind_endpoint == "tcp://*:6000"


def test_from_config(tmp_path: Path) -> None:
    cfg = ControlConfig(endpoint="tcp://127.0.0.1:5555", bind="tcp://127.0.0.1:*", heartbeat_s=HEARTBEAT_S,
                        peer_timeout_s=PEER_TIMEOUT_S, request_timeout_s=1.0)
    server = EchoEdge(ControlServer.from_config(cfg, edge_identity()))
    try:
        cfg = cfg.model_copy(update={"endpoint": server.server.endpoint})
        with ControlClient.from_config(cfg) as client:
            assert client.request(start(2), SessionAck).session == 2
    finally:
        server.close()


# --- issue 11: who may take a slot, the key behind a routing id, the IQ cable's keys, fuzzed frames -----------------

def _info(name: str, last_seen: float, last_active: float, user: str | None = None):
    from testbed.control.endpoint import PeerInfo

    hello = Hello(role="host", node_id=name, software_version="1")
    return PeerInfo(name.encode(), hello, 0.0, last_seen, last_active, user)


def test_eviction_order_protected_never_authenticated_last_then_silent_then_idle() -> None:
    server = ControlServer("tcp://127.0.0.1:*", edge_identity(), **TIMING, max_peers=4)
    try:
        now = time.monotonic()
        peers = [_info("owner", now, now - 50), _info("idle", now, now - 30), _info("busy", now, now - 1),
                 _info("silent", now - 1.0, now - 2), _info("keyed", now - 9, now - 99, user="K" * 40)]
        with server._cond:
            server._peers = {p.peer_id: p for p in peers}
        server.protect([b"owner"])
        order = []
        while server._evict_one("N" * 40, now):  # an authenticated newcomer may evict anyone unprotected
            order.append(next(n for n in (p.peer_id for p in peers) if n not in server.peers_alive()
                               and n not in order))
        assert order == [b"silent", b"idle", b"busy", b"keyed"]  # unauthenticated first: silent, then idle longest
        assert list(server.peers_alive()) == [b"owner"]
        with server._cond:
            server._peers.update({b"keyed": peers[-1]})
        assert not server._evict_one(None, now)  # an unauthenticated newcomer never evicts an authenticated host
        assert server.stats["peers_evicted"] == 4
    finally:
        server.close()


def test_idle_hosts_cannot_exhaust_max_peers_and_a_session_owner_keeps_its_slot() -> None:
    edge = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity(), **TIMING, max_peers=3))
    crowd = [ControlClient(edge.server.endpoint, **TIMING) for _ in range(3)]
    try:
        for c in crowd:
            c.wait_ready(2.0)
        wait_for(lambda: len(edge.server.peers_alive()) == 3)  # (the server records a host just after its ack)
        owner_id = next(p for p, i in edge.server.peers_alive().items() if i.hello.instance == crowd[0].hello.instance)
        edge.server.protect([owner_id])
        late = [ControlClient(edge.server.endpoint, **TIMING) for _ in range(4)]  # more than max_peers
        crowd += late
        for c in late:
            c.wait_ready(2.0)  # each got a slot: an idle host made room
        assert owner_id in edge.server.peers_alive() and len(edge.server.peers_alive()) <= 3
        assert crowd[0].request(start(5), SessionAck).ready  # the owner was never evicted
    finally:
        for c in crowd:
            c.close()
        edge.close()


def test_curve_routing_ids_carry_the_host_key(keys: Path) -> None:
    from zmq.utils import z85

    curve = CurveConfig(enabled=True, keys_dir=str(keys))
    server = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity(), curve=server_keys(curve), **TIMING))
    try:
        with ControlClient(server.server.endpoint, curve=client_keys(curve), **TIMING) as host:
            host.wait_ready(3.0)
            (peer_id,) = server.server.peers_alive()
            assert server.server.peer_user(peer_id) == client_keys(curve).public.decode()
            assert len(z85.decode(server.server.peer_user(peer_id))) == 32
        assert server.server.peer_user(b"nobody") is None
    finally:
        server.close()


def test_the_iq_cable_uses_the_control_planes_key_files(keys: Path) -> None:
    import numpy as np

    from radio.backends.factory import make_backend
    from radio.config import ChannelConfig, RadioConfig
    from radio.errors import BackendError
    from testbed.keys import cable_curve

    curve = CurveConfig(enabled=True, keys_dir=str(keys))
    assert cable_curve(CurveConfig(keys_dir=str(keys)), "rx") is None  # CurveZMQ off: the cable is in the clear
    radio = RadioConfig(backend="zmq", zmq={"endpoint": f"tcp://127.0.0.1:{_free_port()}", "send_timeout_s": 0.5})
    rx = make_backend(radio, ChannelConfig(), 0.25, role="rx", curve=cable_curve(curve, "rx"))
    tx = make_backend(radio, ChannelConfig(), 0.25, role="tx", curve=cable_curve(curve, "tx"))
    write_keypair(keys / "stranger", "host")
    stranger = CurveConfig(enabled=True, keys_dir=str(keys / "stranger"), server_public_key=str(keys / "edge.key"))
    rogue = make_backend(radio, ChannelConfig(), 0.25, role="tx", curve=cable_curve(stranger, "tx"))
    with rx, tx, rogue:
        assert rx.curve and tx.curve
        with pytest.raises(BackendError, match="not drained.*CurveZMQ"):
            rogue.tx(np.ones(1 << 21, np.complex64))  # an unknown host key: never connected, its queue fills
        tx.tx(np.ones(1000, np.complex64))
        wait_for(lambda: rx.poll_cable() or rx.tx_clock_received >= 1000)
        assert rx.tx_clock_received == 1000 and rx.malformed_messages == 0
    with pytest.raises(CurveKeyError, match="'tx' or 'rx'"):
        cable_curve(curve, "both")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fuzz_edge():
    e = EchoEdge(ControlServer("tcp://127.0.0.1:*", edge_identity(), heartbeat_s=0.2, peer_timeout_s=2.0,
                               max_message_bytes=4096))
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(e.server.endpoint)
    yield e, dealer
    dealer.close()
    ctx.term()
    e.close()


_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=12)
         | st.binary(max_size=12))
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                         max_size=3), max_leaves=10)
_FIELDS = ["req", "session", "payload_bytes", "packet_count", "packet_payload_bytes", "mcs", "payload_sha256",
           "deadline_s", "sample_rate_hz", "backend", "role", "node_id", "software_version", "instance", "seq",
           "time_s", "ranges", "burst", "first_sample", "samples_sent", "airtime_s", "reason", "extra"]
_frames = st.one_of(
    st.lists(st.binary(max_size=64), min_size=1, max_size=3),
    st.builds(lambda kind, version, fields: [msgpack.packb({"type": kind, "version": version, **fields},
                                                          use_bin_type=True)],
              st.sampled_from(sorted(MESSAGE_TYPES) + ["nope"]), st.sampled_from([1, 1, 1, 2, "1", None]),
              st.dictionaries(st.sampled_from(_FIELDS), _value, max_size=8)),
    st.builds(lambda n: [b"\x81" * n], st.integers(4000, 6000)),  # over max_message_bytes (drops the sender)
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=_frames)
def test_fuzzed_frames_never_stop_the_server(fuzz_edge, frames: list[bytes]) -> None:
    """Whatever a peer without keys sends, the server answers (or drops that peer) and keeps serving others."""
    edge, dealer = fuzz_edge
    before = edge.server.stats
    dealer.send_multipart(frames)
    if sum(map(len, frames)) < 4000 and dealer.poll(2000):
        reply = decode(dealer.recv())
        assert reply.type in ("error", "hello_ack", "heartbeat")
    assert edge.server._thread.is_alive() and edge.server.stats.get("internal_errors", 0) == 0
    assert edge.server.stats.get("received", 0) + edge.server.stats.get("rejected", 0) >= \
        before.get("received", 0) + before.get("rejected", 0)


def test_after_the_fuzz_a_real_host_is_served(fuzz_edge) -> None:
    edge, _ = fuzz_edge
    with ControlClient(edge.server.endpoint, heartbeat_s=0.2, peer_timeout_s=2.0, request_timeout_s=3.0) as host:
        assert host.request(start(77), SessionAck).session == 77
