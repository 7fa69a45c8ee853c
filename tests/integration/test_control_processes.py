"""Host and edge in two real processes: SIGKILL the edge, the host notices; restart it, the host reconnects.

Run as a script (`python test_control_processes.py edge ENDPOINT NAME`), this file is the tiny edge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerLost, PeerTimeout
from testbed.control.server import ControlServer
from testbed.messages import Hello, HelloAck, SessionAck, SessionStart

HEARTBEAT_S = 0.1
PEER_TIMEOUT_S = 0.8
ROOT = Path(__file__).resolve().parents[2]


def start(session: int) -> SessionStart:
    return SessionStart(session=session, payload_bytes=2048, packet_count=2, packet_payload_bytes=1024,
                        mcs="bpsk-1/2", payload_sha256="ef" * 32, deadline_s=5.0, sample_rate_hz=1e6, backend="zmq")


def edge_main(endpoint: str, name: str) -> None:
    """The edge process: answer session_start with session_ack until killed."""
    identity = Hello(role="edge", node_id=name, software_version="0.1.0", capabilities=["echo"])
    with ControlServer(endpoint, identity, heartbeat_s=HEARTBEAT_S, peer_timeout_s=PEER_TIMEOUT_S) as server:
        print(f"READY {server.endpoint}", flush=True)
        while True:
            item = server.poll(1.0)
            if item is not None and isinstance(item[1], SessionStart):
                server.reply(item[0], item[1], SessionAck(session=item[1].session, ready=True))


def spawn_edge(endpoint: str, name: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, __file__, "edge", endpoint, name], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError(f"edge process did not start: {line!r}")
    return proc, line.split()[1]


def next_event(client: ControlClient, kind: type, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = client.recv(0.05)
        if isinstance(item, kind):
            return item
    raise AssertionError(f"no {kind.__name__} within {timeout_s} s")


def test_edge_killed_and_restarted() -> None:
    edge, endpoint = spawn_edge("tcp://127.0.0.1:*", "edge-1")
    port = endpoint.rsplit(":", 1)[1]
    client = ControlClient(endpoint, heartbeat_s=HEARTBEAT_S, peer_timeout_s=PEER_TIMEOUT_S, request_timeout_s=3.0)
    try:
        first = client.wait_ready(5.0)
        assert first.node_id == "edge-1"
        assert client.request(start(1), SessionAck).session == 1

        t0 = time.monotonic()
        edge.send_signal(signal.SIGKILL)
        edge.wait(5)
        next_event(client, PeerLost, timeout_s=PEER_TIMEOUT_S + 2.0)
        assert time.monotonic() - t0 < PEER_TIMEOUT_S + 2.0
        assert not client.peer_alive
        with pytest.raises(PeerTimeout):
            client.request(start(2), SessionAck, timeout_s=0.3)

        edge, _ = spawn_edge(f"tcp://127.0.0.1:{port}", "edge-2")
        ack = next_event(client, HelloAck, timeout_s=5.0)  # the same client re-hellos on its own
        assert ack.node_id == "edge-2" and ack.instance != first.instance
        assert client.peer_alive
        assert client.request(start(3), SessionAck).session == 3
    finally:
        client.close()
        edge.kill()
        edge.wait(5)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "edge":
    edge_main(sys.argv[2], sys.argv[3])
