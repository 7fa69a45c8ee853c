"""The uplink over emulated Plutos: the edge's FedWorker transmits on the emulated device its config gives it (its
DAC output on the emulated air), the host's emulated device receives it in real time through the edge's channel
plus the pair's relative crystal error. The same UplinkReceiver and FedWorker code as over the ZeroMQ cable
(tests/host/test_uplink.py); the host's measured SNR is the channel's."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from test_uplink import Edge  # the FedWorker behind a real control server

from host.fleet import free_port
from host.uplink_receiver import UplinkReceiver
from radio.backends import PlutoBackend
from radio.backends.factory import make_uplink_backend
from radio.link import LinkSettings
from radio.reassembly import split
from radio.transmitter import TX_POWER
from testbed.config import validate
from testbed.control.client import ControlClient

HOST_PPM, EDGE_PPM = 12.0, -9.0


@pytest.mark.parametrize("snr_db", [20.0, 8.0])
def test_the_uplink_over_emulated_plutos_delivers_and_measures_the_snr(snr_db) -> None:
    radio = {"backend": "pluto", "frame": "v1", "mcs": "auto"}
    channel = {"snr_db": snr_db, "seed": 3}
    host = validate({"radio": radio, "channel": channel})
    # the edge's config carries its pair's error as the host's against an exact edge (host.fleet.edge_config)
    edge = validate({"radio": {**radio, "pluto": {"emulated_ppm": HOST_PPM - EDGE_PPM}}, "channel": channel})
    settings = LinkSettings.from_config(host.radio)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    backend = make_uplink_backend(host.radio, host.channel, TX_POWER, "rx", endpoint, crystals_ppm=(HOST_PPM, EDGE_PPM))
    rx = UplinkReceiver(endpoint, settings, backend=backend)
    payload = np.random.default_rng(1).integers(0, 256, 12_000, dtype=np.uint8).tobytes()
    node = Edge(edge, payload, 77, rx.endpoint)
    client = ControlClient(node.server.endpoint)
    try:
        client.wait_ready(5)
        assert rx.endpoint == endpoint and rx.cable is None  # a real-time radio, read continuously
        packets = len(split(payload, settings.packet_payload_bytes))
        up = rx.receive(client, "edge-1", 77, len(payload), packets, hashlib.sha256(payload).hexdigest(), 60, 30)
        assert isinstance(node.worker._tx, PlutoBackend) and node.worker._tx.is_emulated
        assert up.delivered and up.payload == payload, up.reason
        assert abs(up.snr_db - snr_db) < 1.0
        assert up.mcs_per_burst[0] == "64qam-3/4" and up.packets_ok == packets
        assert backend.channel.cfo_hz == pytest.approx((EDGE_PPM - HOST_PPM) * 1e-6 * host.radio.pluto.lo_hz)
    finally:
        client.close()
        node.close()
        rx.close()
