"""The edge daemon in this process: a real ControlServer/ControlClient pair on loopback TCP and an inproc
ZeroMQ IQ cable; the daemon serves in a thread. Fast checks of the daemon's robustness (no torch, no apply).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_node import radio_input
from edge_node.daemon import EdgeDaemon
from host.sender import Sender
from radio.backends.factory import make_channel
from radio.backends.zmq_iq import ZmqTxBackend, loopback_pair
from radio.link import LinkSettings
from radio.transmitter import TX_POWER
from testbed.config import validate
from testbed.control.client import ControlClient
from testbed.control.server import ControlServer
from testbed.control.endpoint import RemoteError
from testbed.messages import BurstDone, Error, MissingRequest, SessionAck, SessionStart, SnrReport, seqs_to_ranges


def _cfg(tmp_path, edge=None, **radio):
    return validate({
        "model": {"cache_dir": str(tmp_path / "cache")},  # the embedded MiniLM: identity only, never loaded
        "radio": {"backend": "zmq", **radio},
        "channel": {"snr_db": 20.0, "seed": 5},
        "edge": {"adapter_dir": str(tmp_path / "edge"), **(edge or {})},
    })


def session_start(session: int, packets: int = 2, packet_bytes: int = 1024, sha: str = "ab" * 32) -> SessionStart:
    return SessionStart(session=session, payload_bytes=packet_bytes * packets, packet_count=packets,
                        packet_payload_bytes=packet_bytes, mcs="qpsk-1/2", payload_sha256=sha, deadline_s=30.0,
                        sample_rate_hz=1e6, backend="zmq", apply=False)


class Running:
    """An EdgeDaemon serving in a thread, a host client and a sender on the same cable."""

    def __init__(self, cfg, max_peers: int = 16) -> None:
        fs, sps = cfg.radio.sample_rate_hz, cfg.radio.samples_per_symbol
        self.tx, rx = loopback_pair(fs, make_channel(cfg.channel, fs, sps, TX_POWER))
        server = ControlServer("tcp://127.0.0.1:*", heartbeat_s=0.2, peer_timeout_s=1.0, max_peers=max_peers)
        self.daemon = EdgeDaemon(cfg, backend=rx, control=server)
        server.set_identity(self.daemon.identity)
        self.thread = threading.Thread(target=self.daemon.serve, kwargs={"max_s": 60}, daemon=True)
        self.thread.start()
        self.client = ControlClient(server.endpoint, heartbeat_s=0.2, peer_timeout_s=1.0, request_timeout_s=3.0)
        self.client.wait_ready(5)
        self.sender = Sender(self.client, self.tx, LinkSettings.from_config(cfg.radio), "zmq")
        self.others: list[ControlClient] = []

    def start(self, session: int, packets: int = 2, client: ControlClient | None = None) -> SessionAck:
        return (client or self.client).request(session_start(session, packets), SessionAck)

    def host(self) -> ControlClient:
        """Another host on the same control port (closed with the daemon)."""
        c = ControlClient(self.daemon.control.endpoint, heartbeat_s=0.2, peer_timeout_s=1.0, request_timeout_s=3.0)
        self.others.append(c)
        c.wait_ready(5)
        return c

    def next(self, kind, timeout_s: float):
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            msg = self.client.recv(0.05)
            if isinstance(msg, kind):
                return msg
        raise AssertionError(f"no {kind.__name__} within {timeout_s} s")

    def close(self) -> None:
        self.daemon.running = False
        self.thread.join(5)
        for c in [self.client, *self.others]:
            c.close()
        self.tx.close()


@pytest.fixture
def running(tmp_path):
    runs = []

    def make(edge=None, max_peers: int = 16, **radio) -> Running:
        runs.append(Running(_cfg(tmp_path, edge, **radio), max_peers))
        return runs[-1]

    yield make
    for r in runs:
        r.close()


def test_stranger_on_the_cable_at_another_rate_does_not_stop_the_daemon(running):
    edge = running()
    stranger = ZmqTxBackend(edge.daemon.backend.endpoint, 2e6)  # well-formed IQ, another sample rate
    stranger.tx(np.full(4096, 0.1, np.complex64))
    stranger.close()
    deadline = time.monotonic() + 5
    while edge.daemon.radio.backend_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert edge.daemon.radio.backend_errors >= 1  # its data, and its closing pause if it got through
    assert edge.thread.is_alive()
    d = edge.sender.deliver(os.urandom(300), 1, deadline_s=60, report_timeout_s=30, apply=False)
    # frame v2: TransferComplete (delivered) comes once the payload passed its SHA-256; no codeword was lost
    assert d.delivered and d.frame == "v2" and d.codewords_resent == 0 and d.timeouts == 0, d.burst_reports


def test_a_new_session_forgets_a_burst_announced_before_it(running):
    edge = running()
    edge.daemon.radio.expect(0, 10**9)  # a vanished host's burst that will never arrive
    assert edge.daemon.radio.expecting
    assert edge.start(7).ready
    assert not edge.daemon.radio.expecting


def test_a_burst_that_stops_arriving_is_closed_and_reported(running, monkeypatch):
    monkeypatch.setattr(radio_input, "STALL_S", 0.3)
    edge = running()
    assert edge.start(8, packets=3).ready
    # The host announces a burst whose samples never reach the cable (it died while sending).
    edge.client.send(BurstDone(session=8, burst=1, first_sample=0, samples_sent=500_000, ranges=[[0, 2]],
                               airtime_s=0.5))
    report = edge.next(SnrReport, 5.0)
    assert report.session == 8 and report.burst == 1 and report.packets_crc_ok == 0
    missing = edge.next(MissingRequest, 1.0)
    assert missing.ranges == [[0, 2]] and missing.missing_count == 3
    assert edge.daemon.radio.stalled_bursts == 1 and edge.thread.is_alive()


def test_leftovers_of_an_interrupted_install_are_removed_at_start(tmp_path):
    root = tmp_path / "edge"
    (root / "versions" / "v1").mkdir(parents=True)
    (root / "versions" / "v1" / "adapter_config.json").write_text("{}")
    os.symlink("versions/v1", root / "current")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / f"staging-{dead.pid}-deadbeef").mkdir()  # a crashed install
    (root / f"staging-{dead.pid}-deadbeef" / "adapter_model.safetensors").write_bytes(b"half")
    os.symlink("versions/v2", root / ".current-0badc0de")  # a crash between symlink and rename
    (root / f"staging-{os.getppid()}-cafecafe").mkdir()  # a live process's install in progress: kept
    daemon = EdgeDaemon(_cfg(tmp_path), backend=loopback_pair(1e6)[1],
                        control=ControlServer("tcp://127.0.0.1:*", heartbeat_s=0.2, peer_timeout_s=1.0))
    try:
        assert sorted(daemon.removed_leftovers) == sorted([f"staging-{dead.pid}-deadbeef", ".current-0badc0de"])
        assert sorted(p.name for p in root.iterdir()) == ["current", f"staging-{os.getppid()}-cafecafe", "versions"]
        assert os.readlink(root / "current") == "versions/v1"
        assert daemon.identity.adapter_id == "v1"
    finally:
        daemon.close()


# --- issue 11: a session belongs to the host that started it; counts are checked before anything is allocated ------

def test_another_host_cannot_replace_a_live_session_or_send_its_bursts(running):
    edge = running()
    assert edge.start(20, packets=3).ready
    rogue = edge.host()
    for attempt in (session_start(21), session_start(20, packets=3)):  # a new session, or "resuming" the live one
        with pytest.raises(RemoteError) as err:
            rogue.request(attempt, SessionAck)
        assert err.value.code == "session_busy" and "serving session 20 of host" in err.value.message
    rogue.send(BurstDone(session=20, burst=1, first_sample=0, samples_sent=10**12, ranges=[[0, 2]], airtime_s=1.0))
    until = time.monotonic() + 3
    while not isinstance(reply := rogue.recv(0.05), Error) and time.monotonic() < until:
        pass
    assert isinstance(reply, Error) and reply.code == "not_session_owner"
    s = edge.daemon.session
    assert s.session == 20 and s.peer == f"host-{edge.client.hello.instance}".encode() and not edge.daemon.radio.expecting
    # the owner replaces its own session and delivers; a finished session is nobody's: the rogue may start one
    d = edge.sender.deliver(os.urandom(300), 22, deadline_s=60, report_timeout_s=30, apply=False)
    assert d.delivered and edge.daemon.session.finished
    assert edge.start(23, client=rogue).ready


def test_a_session_whose_host_is_gone_may_be_taken_over(running):
    edge = running()
    assert edge.start(30).ready
    newcomer = edge.host()
    with pytest.raises(RemoteError, match="session_busy"):
        edge.start(31, client=newcomer)
    edge.client.close()  # the owner vanishes without a bye: after control.peer_timeout_s the session is free
    sender = Sender(newcomer, edge.tx, LinkSettings.from_config(edge.daemon.cfg.radio), "zmq")
    t0 = time.monotonic()
    d = sender.deliver(os.urandom(300), 31, deadline_s=20, report_timeout_s=10, apply=False)
    assert d.delivered and 0.5 < time.monotonic() - t0 < 10  # it waited for the owner to time out, then went on


def test_the_owner_of_a_live_session_keeps_its_slot_while_strangers_say_hello(running):
    edge = running(max_peers=2)
    assert edge.start(40).ready
    crowd = [edge.host() for _ in range(4)]  # each newcomer evicts an idle host, never the owner
    assert len(crowd) == 4 and edge.client.peer_alive
    d = edge.sender.deliver(os.urandom(300), 41, deadline_s=60, report_timeout_s=30, apply=False)
    assert d.delivered


def test_counts_over_the_edge_limits_are_refused_before_anything_is_allocated(running):
    edge = running(edge={"max_payload_bytes": 8192, "max_packets": 64})
    for start, why in ((session_start(50, packets=9), "exceeds the edge's limit of 8192 (edge.max_payload_bytes)"),
                       (session_start(51, packets=100, packet_bytes=16), "100 packets exceed the edge's limit of 64")):
        ack = edge.client.request(start, SessionAck)
        assert not ack.ready and why in ack.reason
        assert edge.daemon.session is None
    assert edge.start(52, packets=8).ready


def test_ownership_follows_the_curve_key_across_routing_ids():
    from edge_node.session import EdgeSession

    s = EdgeSession(session_start(1), b"host-a", "K" * 40)
    assert s.owned_by(b"host-a", "K" * 40) and s.owned_by(b"host-b", "K" * 40)  # the same key: a restarted host
    assert not s.owned_by(b"host-a", "L" * 40)  # the routing id taken over by another key
    plain = EdgeSession(session_start(1), b"host-a")
    assert plain.owned_by(b"host-a", None) and not plain.owned_by(b"host-b", None)


def test_an_iq_cable_other_machines_reach_needs_curve_like_the_control_port(tmp_path):
    from edge_node.daemon import cable_bind_endpoint
    from testbed.errors import ConfigError

    exposed = _cfg(tmp_path, zmq={"bind_endpoint": "tcp://*:5600"})
    with pytest.raises(ConfigError, match=r"^IQ cable bind address tcp://\*:5600 is reachable from other machines .*"
                                          "feed this edge's receiver"):
        EdgeDaemon(exposed)
    assert not (tmp_path / "edge").exists()  # refused before anything was bound or written
    assert cable_bind_endpoint(exposed) == "tcp://*:5600"
    assert cable_bind_endpoint(_cfg(tmp_path)) == "tcp://127.0.0.1:5600"
    pluto = {"backend": "pluto", "zmq": {"bind_endpoint": "tcp://*:5600"}}
    assert cable_bind_endpoint(_cfg(tmp_path, **pluto)) == "tcp://*:5600"  # emulated Plutos: the cable is the air
    assert cable_bind_endpoint(_cfg(tmp_path, **pluto, pluto={"uri": "ip:192.168.2.1"})) is None  # its own device
    assert cable_bind_endpoint(_cfg(tmp_path, **pluto, pluto={"uri": "ip:192.168.2.1", "one_device": True})) \
        == "tcp://*:5600"
    assert cable_bind_endpoint(_cfg(tmp_path, zmq={"bind_side": "tx"})) is None  # the host binds


_starts = st.builds(
    lambda session, payload_bytes, packet_bytes, rate, deadline, snr: SessionStart(
        session=session, payload_bytes=min(payload_bytes, packet_bytes * (2**32 - 1)),  # a count a message can carry
        packet_count=-(-min(payload_bytes, packet_bytes * (2**32 - 1)) // packet_bytes),
        packet_payload_bytes=packet_bytes, mcs="qpsk-1/2", payload_sha256="cd" * 32, deadline_s=deadline,
        sample_rate_hz=rate, backend="zmq", apply=False, channel_snr_db=snr),
    st.integers(0, 2**32 - 1), st.integers(1, 2**40), st.integers(1, 65535), st.sampled_from([1e6, 1e6, 2e6, 1e10]),
    st.floats(1e-3, 1e6), st.none() | st.floats(-100, 200))
_bursts = st.builds(
    lambda session, burst, first, sent, ranges, airtime: BurstDone(
        session=session, burst=burst, first_sample=first, samples_sent=sent, ranges=ranges, airtime_s=airtime),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
    st.lists(st.integers(0, 2**32 - 1), max_size=6).map(lambda xs: seqs_to_ranges(xs)), st.floats(0, 1e9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.one_of(_starts, _bursts), min_size=1, max_size=4))
def test_fuzzed_valid_messages_from_another_host_never_break_the_daemon_or_its_owner(running_one, messages,
                                                                                     caplog):
    """Well-formed messages with any values (hypothesis) from a second host: the daemon answers, keeps its limits,
    never hits an error while handling one, and the live session stays its owner's."""
    edge, rogue = running_one
    with caplog.at_level("ERROR"):
        for msg in messages:
            rogue.send(msg)
        time.sleep(0.05)
    s = edge.daemon.session
    assert edge.thread.is_alive() and not [r for r in caplog.records if "error while handling" in r.getMessage()]
    assert s is None or s.finished or s.start.packet_count <= edge.daemon.cfg.edge.max_packets
    owner = f"host-{edge.client.hello.instance}".encode()
    if s is not None and s.start.session == 4242 and not s.finished:
        assert s.peer == owner


@pytest.fixture
def running_one(running):
    edge = running()
    assert edge.start(4242, packets=3).ready  # a live session of the owner, for the whole fuzz
    return edge, edge.host()
