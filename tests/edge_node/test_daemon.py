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
from testbed.messages import BurstDone, MissingRequest, SessionAck, SessionStart, SnrReport


def _cfg(tmp_path, **radio):
    return validate({
        "model": {"cache_dir": str(tmp_path / "cache")},  # the embedded MiniLM: identity only, never loaded
        "radio": {"backend": "zmq", **radio},
        "channel": {"snr_db": 20.0, "seed": 5},
        "edge": {"adapter_dir": str(tmp_path / "edge")},
    })


class Running:
    """An EdgeDaemon serving in a thread, a host client and a sender on the same cable."""

    def __init__(self, cfg) -> None:
        fs, sps = cfg.radio.sample_rate_hz, cfg.radio.samples_per_symbol
        self.tx, rx = loopback_pair(fs, make_channel(cfg.channel, fs, sps, TX_POWER))
        server = ControlServer("tcp://127.0.0.1:*", heartbeat_s=0.2, peer_timeout_s=1.0)
        self.daemon = EdgeDaemon(cfg, backend=rx, control=server)
        server.set_identity(self.daemon.identity)
        self.thread = threading.Thread(target=self.daemon.serve, kwargs={"max_s": 60}, daemon=True)
        self.thread.start()
        self.client = ControlClient(server.endpoint, heartbeat_s=0.2, peer_timeout_s=1.0, request_timeout_s=3.0)
        self.client.wait_ready(5)
        self.sender = Sender(self.client, self.tx, LinkSettings.from_config(cfg.radio), "zmq")

    def start(self, session: int, packets: int = 2) -> SessionAck:
        start = SessionStart(session=session, payload_bytes=1024 * packets, packet_count=packets,
                             packet_payload_bytes=1024, mcs="qpsk-1/2", payload_sha256="ab" * 32, deadline_s=30.0,
                             sample_rate_hz=1e6, backend="zmq", apply=False)
        return self.client.request(start, SessionAck)

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
        self.client.close()
        self.tx.close()


@pytest.fixture
def running(tmp_path):
    runs = []

    def make(**radio) -> Running:
        runs.append(Running(_cfg(tmp_path, **radio)))
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
    assert d.delivered and d.bursts == 1 and edge.daemon.session.payload_if_valid() is not None


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
