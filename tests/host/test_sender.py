"""The Sender against a scripted edge (a real ControlServer in a thread; the IQ goes to a cable nobody reads)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from host.sender import DeliveryError, Sender
from radio.backends.zmq_iq import loopback_pair
from radio.link import LinkSettings
from testbed.control.client import ControlClient
from testbed.control.server import ControlServer
from testbed.messages import (BurstDone, MissingRequest, SessionAck, SessionStart, SnrReport, TransferComplete)


class ScriptedEdge:
    """Acks every SessionStart; answers BurstDone number k with script(k, burst_done)."""

    def __init__(self, script) -> None:
        self.server = ControlServer("tcp://127.0.0.1:*", heartbeat_s=0.2, peer_timeout_s=1.0)
        self.script, self.running, self.bursts = script, True, []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            item = self.server.poll(0.05)
            if item is None:
                continue
            peer, msg = item
            if isinstance(msg, SessionStart):
                self.server.reply(peer, msg, SessionAck(session=msg.session, ready=True))
            elif isinstance(msg, BurstDone):
                self.bursts.append(msg)
                for reply in self.script(msg.burst, msg):
                    self.server.send(peer, reply)

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.server.close()


def report(session: int, burst: int) -> SnrReport:
    return SnrReport(session=session, burst=burst, sample_index=0, time_s=time.time(), mean_snr_db=12.0,
                     packets_detected=1, packets_crc_ok=1)


def missing(session: int, rnd: int, ranges) -> MissingRequest:
    return MissingRequest(session=session, round=rnd, ranges=ranges, missing_count=sum(b - a + 1 for a, b in ranges))


def complete(session: int) -> TransferComplete:
    return TransferComplete(session=session, payload_sha256="00" * 32, packets_received=5, elapsed_s=0.1)


@pytest.fixture
def setup():
    made = []

    def make(script, mcs: str = "auto"):
        edge = ScriptedEdge(script)
        client = ControlClient(edge.server.endpoint, heartbeat_s=0.2, peer_timeout_s=1.0, request_timeout_s=3.0)
        client.wait_ready(5)
        tx, rx = loopback_pair(1e6)
        stop = threading.Event()
        drain = threading.Thread(target=_drain, args=(rx, stop), daemon=True)  # the cable's far end reads
        drain.start()
        sender = Sender(client, tx, LinkSettings(1e6, 4, 0.25, 256, 0.1, 30, mcs), "zmq")
        made.append((edge, client, tx, rx, stop, drain))
        return sender, edge

    yield make
    for edge, client, tx, rx, stop, drain in made:
        client.close()
        tx.close()
        stop.set()
        drain.join(5)
        rx.close()
        edge.close()


def _drain(rx, stop: threading.Event) -> None:
    while not stop.is_set():
        rx.poll_cable()
        if rx.pending:
            rx.rx(rx.pending)
        else:
            time.sleep(0.005)


def test_first_burst_uses_the_configured_mcs(setup):
    sender, edge = setup(lambda k, m: [report(m.session, k), complete(m.session)], mcs="qpsk-1/2")
    d = sender.deliver(os.urandom(600), 1, deadline_s=10, report_timeout_s=2, apply=False)
    assert d.mcs_per_burst == ["qpsk-1/2"]


def test_a_late_missing_list_of_an_earlier_burst_is_not_taken_for_this_one(setup):
    def script(k, m):
        if k == 1:  # burst 1 is lost entirely, then its late answer comes with burst 2's
            return []
        if k == 2:
            return [report(m.session, 1), missing(m.session, 0, [[0, 4]]), report(m.session, 2), complete(m.session)]
        raise AssertionError("a third burst was sent")
    sender, edge = setup(script)
    d = sender.deliver(os.urandom(5 * 256), 2, deadline_s=10, report_timeout_s=0.5, apply=False)
    assert d.delivered and d.bursts == 2 and len(edge.bursts) == 2


def test_deadline_error_names_the_missing_packets_and_the_deadline(setup):
    sender, edge = setup(lambda k, m: [report(m.session, k), missing(m.session, k - 1, [[2, 4], [7, 7]])])
    t0 = time.monotonic()
    with pytest.raises(DeliveryError) as err:
        sender.deliver(os.urandom(8 * 256), 3, deadline_s=1.5, report_timeout_s=1, apply=False)
    assert time.monotonic() - t0 < 4
    msg = str(err.value)
    assert "session 3: 4 of 8 packets still missing after the 1.5 s delivery deadline" in msg
    assert "(missing packets 2-4, 7)" in msg and "the edge keeps its previous adapter" in msg


def test_an_edge_known_gone_ends_the_delivery_at_once_not_at_its_deadline(setup):
    class Gone(Exception):
        pass

    sender, edge = setup(lambda k, m: [])  # the edge stops answering after the session starts
    calls = []

    def edge_check() -> None:
        calls.append(time.monotonic())
        if len(edge.bursts) >= 1:
            raise Gone("the local edge process exited with code -9")

    sender.edge_check = edge_check
    t0 = time.monotonic()
    with pytest.raises(Gone):
        sender.deliver(os.urandom(4 * 256), 4, deadline_s=60, report_timeout_s=30, apply=False)
    assert time.monotonic() - t0 < 5 and len(edge.bursts) == 1
