"""Two real processes with emulated Plutos: the host's TX device sends over the emulated air, the edge's RX decodes.

The same PlutoBackend code as on hardware (int16 scaling, fixed TX length, rx() from device buffers)
runs on both sides; the air between them is the ZeroMQ IQ cable, with the channel at the edge's device.
"""

from __future__ import annotations

from two_processes import expected_payloads, run_pair

PACKETS, PAYLOAD_BYTES, SESSION = 12, 200, 78
BURST_PACKETS = [3, 4, 3, 2]  # bursts of different lengths: the TX buffer is destroyed and recreated

COMMON = f"""
import json, sys, time
import numpy as np
from radio.backends import PlutoBackend, make_backend
from radio.config import ChannelConfig, RadioConfig
PACKETS, PAYLOAD_BYTES, SESSION, BURST_PACKETS = {PACKETS}, {PAYLOAD_BYTES}, {SESSION}, {BURST_PACKETS}
channel = ChannelConfig(snr_db=20.0, cfo_hz=1500.0, timing_offset_samples=0.4, seed=9)
pluto = dict(uri=None, tx_attenuation_db=10.0, rx_gain_mode="manual", rx_gain_db=40.0, rx_buffer_size=8192)
def radio(**zmq):
    return RadioConfig(backend="pluto", sample_rate_hz=1e6, samples_per_symbol=4, zmq=zmq, pluto=pluto)
def payloads():
    rng = np.random.default_rng(SESSION)
    return [rng.bytes(PAYLOAD_BYTES) for _ in range(PACKETS)]
"""

EDGE = COMMON + """
from radio.receiver import Receiver
from radio.transmitter import TX_POWER
rx = make_backend(radio(bind_endpoint="tcp://127.0.0.1:*", timeout_s=2.0), channel, TX_POWER, role="rx")
assert isinstance(rx, PlutoBackend) and rx.is_emulated and rx.device.air_rx is not None
print(rx.device.air_rx.endpoint, flush=True)
receiver = Receiver(1e6, 4, 0.25)
got, snrs, peaks, deadline = {}, [], [], time.monotonic() + 40
while len(got) < PACKETS and time.monotonic() < deadline:
    y = rx.rx(16384)
    peaks.append(float(np.max(np.abs(y))))
    for p in receiver.feed(y):
        if p.crc_ok and p.header.session == SESSION:
            got[p.header.seq] = p.payload.hex()
            snrs.append(p.snr_db)
rx.close()
print(json.dumps({"payloads": got, "snr_db": snrs, "peak": max(peaks)}), flush=True)
"""

HOST = COMMON + """
from radio.frame import Header
from radio.mcs import by_name
from radio.transmitter import TX_POWER, burst, packet_symbols
mcs = by_name("qpsk-1/2")
tx = make_backend(radio(endpoint=sys.argv[1]), channel, TX_POWER, role="tx")
assert isinstance(tx, PlutoBackend) and tx.device.air_tx is not None and not tx.streaming
data = payloads()
for b, count in enumerate(BURST_PACKETS):
    seqs = range(sum(BURST_PACKETS[:b]), sum(BURST_PACKETS[:b + 1]))
    symbols = [packet_symbols(Header(mcs.index, SESSION, s, PACKETS, PAYLOAD_BYTES), data[s], mcs) for s in seqs]
    tx.tx(burst(symbols, 4, 0.25))
    time.sleep(0.05)
tx.close()
print(tx.samples_sent, flush=True)
"""


def test_host_pluto_process_transmits_and_edge_pluto_process_decodes_every_packet() -> None:
    result = run_pair(EDGE, HOST)
    assert result["payloads"] == expected_payloads(SESSION, PACKETS, PAYLOAD_BYTES)
    assert all(15.0 < s < 25.0 for s in result["snr_db"])  # measured around the 20 dB set
    # 12-bit ADC codes / 2**11 at -10 dB TX, -30 dB link, 40 dB RX: well inside full scale, not clipped
    assert 0.05 < result["peak"] < 1.0
