"""The uplink over the ZeroMQ IQ cable and the control plane, both real (pyzmq, loopback): the edge's FedWorker
transmits the packets the host's UplinkReceiver asks for; the host measures the SNR of the channel it applies,
repeats what failed, and gives up at its deadline or when the edge refuses. (The local training is not run here:
the worker holds a payload as it would after training.)"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from edge_node.fed_worker import FedWorker
from host.uplink_receiver import UplinkReceiver
from host.uplink_v2 import receive_v2
from radio.backends.factory import make_channel
from radio.link import LinkSettings
from radio.reassembly import split
from radio.transmitter import TX_POWER
from testbed.config import validate
from testbed.control.client import ControlClient
from testbed.control.server import ControlServer
from testbed.messages import UplinkRequest, UplinkSent


class Edge:
    """A FedWorker behind a real control server, served by a thread (as the daemon's loop would)."""

    def __init__(self, cfg, payload: bytes, session: int, endpoint: str, lie: bool = False) -> None:
        self.lie = lie  # a hostile edge: every uplink_request is answered with an absurd uplink_sent
        self.server = ControlServer("tcp://127.0.0.1:*")
        self.worker = FedWorker(cfg, self.server, "edge-1")
        self.worker._chunks = split(payload, cfg.radio.packet_payload_bytes)  # what step() holds after training
        self.worker._payload = payload
        self.worker._session = session
        self.worker._connect(endpoint)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            item = self.server.poll(0.02)
            if item is not None and getattr(item[1], "type", "") == "uplink_request":
                if self.lie:
                    self.server.reply(item[0], item[1], UplinkSent(session=item[1].session, burst=item[1].burst,
                                                                   first_sample=0, samples_sent=2**40, packets=1))
                else:
                    self.worker.on_uplink_request(*item)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.worker.close()
        self.server.close()


@pytest.fixture
def link(request):
    snr_db, lie = request.param if isinstance(request.param, tuple) else (request.param, False)
    cfg = validate({"radio": {"backend": "zmq"}})
    settings = LinkSettings.from_config(cfg.radio)
    channel = make_channel(cfg.channel.model_copy(update={"snr_db": snr_db, "seed": 3}), settings.sample_rate_hz,
                           settings.samples_per_symbol, TX_POWER)
    rx = UplinkReceiver("tcp://127.0.0.1:*", settings, channel)
    payload = np.random.default_rng(1).integers(0, 256, 30_000, dtype=np.uint8).tobytes()
    edge = Edge(cfg, payload, 77, rx.endpoint, lie=lie)
    client = ControlClient(edge.server.endpoint)
    client.wait_ready(5)
    yield rx, client, payload
    client.close()
    edge.close()
    rx.close()


@pytest.mark.parametrize("link", [12.0], indirect=True)
def test_uplink_delivers_and_measures_the_snr(link) -> None:
    rx, client, payload = link
    packets = len(split(payload, 1024))
    up = rx.receive(client, "edge-1", 77, len(payload), packets, hashlib.sha256(payload).hexdigest(), 60, 30)
    assert up.delivered and up.payload == payload, up.reason
    assert abs(up.snr_db - 12.0) < 1.0
    assert up.mcs_per_burst[0] == "64qam-3/4"  # the first burst probes at the fastest MCS
    assert up.bursts >= 2 and up.mcs_per_burst[-1] != "64qam-3/4"  # then the MCS the measured 12 dB supports
    assert up.packets_ok == packets and up.samples > 0


@pytest.mark.parametrize("link", [12.0], indirect=True)
def test_deadline_and_refusals_leave_the_edge_out(link) -> None:
    rx, client, payload = link
    packets = len(split(payload, 1024))
    sha = hashlib.sha256(payload).hexdigest()
    late = rx.receive(client, "edge-1", 77, len(payload), packets, sha, 1e-6, 30)
    assert not late.delivered and "fed.uplink_deadline_s" in late.reason
    wrong = rx.receive(client, "edge-1", 78, len(payload), packets, sha, 30, 30)
    assert not wrong.delivered and "uplink session 78 is not held" in wrong.reason
    bad_sha = rx.receive(client, "edge-1", 77, len(payload), packets, "0" * 64, 60, 30)
    assert not bad_sha.delivered and "does not match the SHA-256" in bad_sha.reason


@pytest.mark.parametrize("link", [12.0], indirect=True)
def test_a_wrong_packet_count_is_refused_before_any_burst(link) -> None:
    rx, client, payload = link
    up = rx.receive(client, "edge-1", 77, len(payload), 2**31, hashlib.sha256(payload).hexdigest(), 60, 30)
    assert not up.delivered and up.bursts == 0 and up.samples == 0
    assert "train_done announced 2147483648 packets for 30000 bytes" in up.reason


@pytest.mark.parametrize("link", [(12.0, True)], indirect=True)
def test_an_edge_announcing_an_absurd_burst_is_left_out(link) -> None:
    rx, client, payload = link
    packets = len(split(payload, 1024))
    up = rx.receive(client, "edge-1", 77, len(payload), packets, hashlib.sha256(payload).hexdigest(), 60, 30)
    assert not up.delivered and up.samples == 0  # its claimed airtime is not counted either
    assert f"1 packets in {2**40} samples; the {packets} packets asked for at 64qam-3/4 take at most" in up.reason


@pytest.mark.parametrize("link", [12.0], indirect=True)
def test_a_request_spanning_every_sequence_number_sends_only_what_is_held(link) -> None:
    rx, client, payload = link
    client.send(UplinkRequest(session=77, burst=1, mcs="qpsk-1/2", ranges=[[0, 2**32 - 1]]))
    reply = client.recv(20.0)  # expanding the run would hold 2**32 numbers: the edge clips it to its 30 packets
    while reply is not None and reply.type != "uplink_sent":
        reply = client.recv(20.0)
    assert isinstance(reply, UplinkSent) and reply.packets == len(split(payload, 1024)) and reply.samples_sent > 0


@pytest.mark.parametrize("link", [12.0, 3.0], indirect=True)
def test_the_v2_uplink_delivers_ldpc_bursts_and_measures_the_snr(link) -> None:
    """frame v2: the host plans LDPC bursts, the edge transmits exactly them, the burst receiver measures the SNR;
    less airtime than v1's packets on the same channel."""
    rx, client, payload = link
    snr_db = rx.rx.channel.snr_db if hasattr(rx.rx, "channel") and rx.rx.channel is not None else None
    sha = hashlib.sha256(payload).hexdigest()
    up = receive_v2(rx, client, "edge-1", 77, len(payload), sha, 60, 30, lambda: False)
    assert up.delivered and up.payload == payload, up.reason
    assert all(m.startswith("ldpc-") for m in up.mcs_per_burst) and up.bursts >= 2  # a probe, then data
    assert snr_db is None or abs(rx.snr_db - snr_db) < 1.0
    assert up.packets_ok >= -(-len(payload) // 242) and up.samples > 0
    v1 = rx.receive(client, "edge-1", 77, len(payload), len(split(payload, 1024)), sha, 60, 30)
    assert v1.delivered and up.samples < v1.samples


@pytest.mark.parametrize("link", [12.0], indirect=True)
def test_v2_uplink_refusals(link) -> None:
    rx, client, payload = link
    sha = hashlib.sha256(payload).hexdigest()
    late = receive_v2(rx, client, "edge-1", 77, len(payload), sha, 1e-6, 30, lambda: False)
    assert not late.delivered and "fed.uplink_deadline_s" in late.reason and late.samples == 0
    bad_sha = receive_v2(rx, client, "edge-1", 77, len(payload), "0" * 64, 60, 30, lambda: False)
    assert not bad_sha.delivered and "does not match the SHA-256" in bad_sha.reason
    longer = receive_v2(rx, client, "edge-1", 77, len(payload) + 50_000, sha, 60, 30, lambda: False)
    assert not longer.delivered and "does not start every codeword inside the payload" in longer.reason
    client.send(UplinkRequest(session=77, burst=9, mcs="qpsk-1/2", ranges=[], runs=[[0, 1]]))
    reply = client.recv(20.0)
    while reply is not None and reply.type not in ("uplink_sent", "error"):
        reply = client.recv(20.0)
    assert reply.type == "error" and reply.code == "bad_mcs" and "unknown LDPC MCS 'qpsk-1/2'" in reply.message


@pytest.mark.parametrize("link", [(12.0, True)], indirect=True)
def test_an_edge_announcing_an_absurd_v2_burst_is_left_out(link) -> None:
    rx, client, payload = link
    up = receive_v2(rx, client, "edge-1", 77, len(payload), hashlib.sha256(payload).hexdigest(), 60, 30, lambda: False)
    assert not up.delivered and up.samples == 0 and up.bursts == 1
    assert f"as 1 packets in {2**40} samples" in up.reason and "at ldpc-" in up.reason
