"""Two real processes joined by the ZeroMQ IQ cable: the host transmits packets, the edge decodes them."""

from __future__ import annotations

from two_processes import expected_payloads, run_pair

PACKETS, BURSTS, PAYLOAD_BYTES, SESSION = 12, 4, 200, 77

COMMON = f"""
import json, sys, time
import numpy as np
from radio.backends import make_backend
from radio.config import ChannelConfig, RadioConfig
PACKETS, BURSTS, PAYLOAD_BYTES, SESSION = {PACKETS}, {BURSTS}, {PAYLOAD_BYTES}, {SESSION}
channel = ChannelConfig(snr_db=20.0, cfo_hz=1500.0, timing_offset_samples=0.4, seed=9)
def radio(**zmq):
    return RadioConfig(backend="zmq", sample_rate_hz=1e6, samples_per_symbol=4, zmq=zmq)
def payloads():
    rng = np.random.default_rng(SESSION)
    return [rng.bytes(PAYLOAD_BYTES) for _ in range(PACKETS)]
"""

EDGE = COMMON + """
from radio.receiver import Receiver
from radio.transmitter import TX_POWER
rx = make_backend(radio(bind_endpoint="tcp://127.0.0.1:*", timeout_s=2.0), channel, TX_POWER, role="rx")
print(rx.endpoint, flush=True)
receiver = Receiver(1e6, 4, 0.25)
got, snrs, deadline = {}, [], time.monotonic() + 40
while len(got) < PACKETS and time.monotonic() < deadline:
    for p in receiver.feed(rx.rx(16384)):
        if p.crc_ok and p.header.session == SESSION:
            got[p.header.seq] = p.payload.hex()
            snrs.append(p.snr_db)
rx.close()
print(json.dumps({"payloads": got, "snr_db": snrs, "malformed": rx.malformed_messages}), flush=True)
"""

HOST = COMMON + """
from radio.frame import Header
from radio.mcs import by_name
from radio.transmitter import TX_POWER, burst, packet_symbols
mcs = by_name("qpsk-1/2")
tx = make_backend(radio(endpoint=sys.argv[1]), channel, TX_POWER, role="tx")
data = payloads()
per = PACKETS // BURSTS
for b in range(BURSTS):
    symbols = [packet_symbols(Header(mcs.index, SESSION, s, PACKETS, PAYLOAD_BYTES), data[s], mcs)
               for s in range(b * per, (b + 1) * per)]
    tx.tx(burst(symbols, 4, 0.25))
    time.sleep(0.05)
tx.close()
print(tx.samples_sent, flush=True)
"""


def test_host_process_transmits_and_edge_process_decodes_every_packet() -> None:
    result = run_pair(EDGE, HOST)
    assert result["payloads"] == expected_payloads(SESSION, PACKETS, PAYLOAD_BYTES)
    assert result["malformed"] == 0
    assert all(15.0 < s < 25.0 for s in result["snr_db"])  # measured around the 20 dB set
