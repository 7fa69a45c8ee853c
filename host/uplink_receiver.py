"""The host's end of an edge's uplink: receive the edge's adapter over the radio, measure the SNR, repeat what failed.

The downlink's selective repeat reversed, with the receiver in charge: the host binds the receiving end of the
edge's uplink cable (the edge's channel model applies here, at the receiver, as on the downlink), asks the edge
for the packets still missing at the MCS the SNR it measured on the last burst supports (the fastest MCS for the
first burst: SNR is measured on the preamble whether or not packets decode), reads the burst the edge announces
through the same receiver (sync, CFO, SNR per packet, demodulation, Viterbi, CRC), and repeats until the payload
is whole and matches the SHA-256 the edge announced, or the deadline passes. The measured uplink SNR is what the
rank policy uses for this edge's next ranks. Verification (signature, manifest) happens in host.fed_experiment.

For an edge that lists uplink:v2, host.uplink_v2 drives the same exchange (`exchange`) with LDPC bursts the host
plans instead of packets.

The receiving end is any backend (radio.backends.factory.make_uplink_backend): on the ZeroMQ cable the burst is
complete once the cable has delivered the transmit-clock index the edge announced; on a real-time radio (a Pluto,
real or emulated) the stream is read continuously from the request on, and the burst is complete once its length
plus a margin has been read after the edge said it was sent (as the edge reads the downlink, edge_node.radio_input).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from radio import mcs as mcs_module
from radio.airtime import burst_samples
from radio.backends.base import RadioBackend
from radio.backends.factory import uplink_cable_rx
from radio.backends.zmq_iq import ZmqRxBackend
from radio.link import LinkSettings, pick_mcs
from radio.mcs import MCS_TABLE, Mcs
from radio.reassembly import Reassembly
from radio.receiver import Receiver
from testbed.control.client import ControlClient
from testbed.control.endpoint import PeerLost
from testbed.messages import MAX_RANGES, Error, UplinkRequest, UplinkSent, seqs_to_ranges

CHUNK_SAMPLES = 1 << 17
TAIL_SAMPLES = 16384  # silence read after a burst so the receiver completes its last packet
STALL_S = 3.0  # an announced burst whose samples stop arriving for this long is closed with what came
REALTIME_READ_SAMPLES = 32768  # real time: read in pieces this long, so control messages are seen between them
REALTIME_MARGIN_S = 0.2  # real time: read this much past a burst's announced end (the edge's TX pipeline may still
#                          hold its start when uplink_sent arrives: a device's buffers, the emulated air's socket)
ANSWER_S = 10.0  # how long the edge may take to answer an uplink_request (it transmits first)


@dataclass
class Uplink:
    """What one uplink did, measured at the host."""

    edge: str
    delivered: bool = False
    payload: bytes | None = None
    reason: str | None = None
    bursts: int = 0
    packets_sent: int = 0
    packets_ok: int = 0
    samples: int = 0
    snr_db_packets: list[float] = field(default_factory=list)
    mcs_per_burst: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def airtime_s(self, sample_rate_hz: float) -> float:
        return self.samples / sample_rate_hz

    @property
    def snr_db(self) -> float | None:
        """Mean SNR over the packets the host detected (None when none was)."""
        return float(np.mean(self.snr_db_packets)) if self.snr_db_packets else None


class UplinkReceiver:
    """One edge's uplink receiving end and the receiver that turns its stream into packets.

    endpoint: where the edge's transmitter connects. backend: the receiving end (make_uplink_backend); None binds a
    ZeroMQ cable at endpoint that applies `channel` (the zmq uplink). A backend shared with other users (the host's
    one real Pluto) may be closed by each: closing twice is safe.
    """

    def __init__(self, endpoint: str, settings: LinkSettings, channel=None, *, hwm_messages: int = 16,
                 backend: RadioBackend | None = None) -> None:
        self.settings = settings
        fs = settings.sample_rate_hz
        self.rx = backend if backend is not None else uplink_cable_rx(endpoint, fs, channel, hwm_messages)
        self.endpoint = self.rx.endpoint if isinstance(self.rx, ZmqRxBackend) else endpoint
        self.cable = self.rx.cable_stream  # None: a real-time radio
        self.receiver = Receiver(fs, settings.samples_per_symbol, settings.rolloff)
        self.samples_read = 0  # real time: samples of the stream read so far
        self.snr_db: float | None = None  # the last burst's selection SNR (what the next MCS is picked from)

    def receive(self, client: ControlClient, edge: str, session: int, payload_bytes: int, packet_count: int,
                payload_sha256: str, deadline_s: float, max_rounds: int,
                gone: Callable[[], bool] = lambda: False) -> Uplink:
        """Pull the edge's held payload up the radio as v1 packets; an Uplink either way (delivered or why not).
        host.uplink_v2.receive_v2 does the same with v2 LDPC bursts."""
        up = Uplink(edge)
        t0 = time.monotonic()
        packet_bytes = self.settings.packet_payload_bytes
        if packet_count != max(1, -(-payload_bytes // packet_bytes)):
            up.reason = (f"train_done announced {packet_count} packets for {payload_bytes} bytes (packets of "
                         f"{packet_bytes} bytes: radio.packet_payload_bytes)")
            return up
        reassembly = Reassembly(session, packet_count)
        snr_db: float | None = None
        try:
            for burst in range(1, max_rounds + 1):
                missing = reassembly.missing()
                if not missing:
                    break
                if gone():
                    up.reason = "the edge process exited"
                    return up
                mcs = MCS_TABLE[-1] if snr_db is None and self.settings.mcs == "auto" else pick_mcs(self.settings,
                                                                                                    snr_db)
                left = t0 + deadline_s - time.monotonic()
                if left <= 0:
                    up.reason = f"uplink deadline of {deadline_s:g} s passed with {len(missing)} of {packet_count} " \
                                "packets missing (fed.uplink_deadline_s)"
                    return up
                got = self._burst(client, session, burst, mcs, missing, reassembly, up, min(left, ANSWER_S +
                                  deadline_s))
                if isinstance(got, str):
                    up.reason = got
                    return up
                up.bursts += 1
                up.mcs_per_burst.append(mcs.name)
                if got:
                    snr_db = mcs_module.selection_snr_db(got)
                    self.snr_db = snr_db
            if not reassembly.complete:
                up.reason = f"{len(reassembly.missing())} of {packet_count} packets missing after {max_rounds} " \
                            "rounds (fed.uplink_max_rounds)"
                return up
            data = reassembly.data()
            if len(data) != payload_bytes or hashlib.sha256(data).hexdigest() != payload_sha256:
                up.reason = "the reassembled uplink payload does not match the SHA-256 the edge announced"
                return up
            up.delivered, up.payload = True, data
            return up
        finally:
            up.wall_s = time.monotonic() - t0

    def _burst(self, client: ControlClient, session: int, burst: int, mcs: Mcs, missing: list[int],
               reassembly: Reassembly, up: Uplink, wait_s: float) -> list[float] | str:
        """Ask for one burst and read it; the SNRs measured on it, or why the uplink stops."""
        ranges = seqs_to_ranges(missing)[:MAX_RANGES]
        packets = sum(last - first + 1 for first, last in ranges)
        s = self.settings  # the longest burst those packets make: an edge that announces more is not believed
        most = burst_samples(packets * s.packet_payload_bytes, s.packet_payload_bytes, mcs, s.samples_per_symbol,
                             s.rolloff)
        request = UplinkRequest(session=session, burst=burst, mcs=mcs.name, ranges=ranges)
        return self.exchange(client, request, packets, most, up, wait_s,
                             lambda samples: self._feed(samples, session, reassembly, up))

    def exchange(self, client: ControlClient, request: UplinkRequest, packets: int, most: int, up: Uplink,
                 wait_s: float, feed: Callable[[np.ndarray], list[float]]) -> list[float] | str:
        """Send one uplink_request and read the burst it asks for through feed (samples -> SNRs measured); the
        SNRs, or why the uplink stops. packets, most: what the burst holds at most (packets or codewords, samples):
        an edge that announces more is not believed."""
        session, burst = request.session, request.burst
        client.send(request)
        end: int | None = None
        snrs: list[float] = []
        asked = time.monotonic()
        progress = asked
        while True:
            msg = client.recv(0.0)
            while msg is not None:
                if isinstance(msg, PeerLost):
                    return f"the edge's control connection was lost: {msg.reason}"
                if isinstance(msg, UplinkSent) and msg.session == session and msg.burst == burst:
                    if msg.packets > packets or msg.samples_sent > most:
                        return (f"the edge announced uplink burst {burst} as {msg.packets} packets in "
                                f"{msg.samples_sent} samples; the {packets} packets asked for at {request.mcs} take "
                                f"at most {most}")
                    # the cable: the edge's transmit clock; real time: the stream read so far, what the radio still
                    # holds ahead of it, the burst and a margin
                    end = msg.first_sample + msg.samples_sent if self.cable is not None else \
                        self.samples_read + self.rx.pending + msg.samples_sent + TAIL_SAMPLES + \
                        int(REALTIME_MARGIN_S * self.settings.sample_rate_hz)
                    up.packets_sent += msg.packets
                    up.samples += msg.samples_sent
                elif isinstance(msg, Error):
                    return f"the edge refused the uplink: {msg.code}: {msg.message}"
                msg = client.recv(0.0)
            if self.cable is None:  # a real-time radio: its stream runs, read it all the while
                if end is not None and self.samples_read >= end:
                    return snrs
                if end is None and time.monotonic() - asked > wait_s:
                    return f"the edge did not answer uplink burst {burst} within {wait_s:.0f} s"
                n = REALTIME_READ_SAMPLES if end is None else min(REALTIME_READ_SAMPLES, end - self.samples_read)
                snrs += feed(self._read(n))
                continue
            self.cable.poll_cable()
            pending = self.rx.pending
            if pending > 0:
                progress = time.monotonic()
                snrs += feed(self._read(min(pending, CHUNK_SAMPLES)))
                continue
            if end is not None and self.cable.tx_clock_received >= end:
                snrs += feed(self._read(TAIL_SAMPLES))
                return snrs
            now = time.monotonic()
            if end is None and now - asked > wait_s:
                return f"the edge did not answer uplink burst {burst} within {wait_s:.0f} s"
            if end is not None and now - progress > STALL_S:
                snrs += feed(self._read(TAIL_SAMPLES))
                return snrs  # the rest of the burst never came: what is missing is asked again
            self.cable.wait_cable(0.005)

    def _read(self, n: int) -> np.ndarray:
        samples = self.rx.rx(n)
        self.samples_read += len(samples)
        return samples

    def _feed(self, samples, session: int, reassembly: Reassembly, up: Uplink) -> list[float]:
        snrs = []
        for p in self.receiver.feed(np.asarray(samples, np.complex64)):
            if np.isfinite(p.snr_db) and (p.header is None or p.header.session == session):
                snrs.append(float(p.snr_db))
                up.snr_db_packets.append(float(p.snr_db))
            if p.payload is not None and p.header is not None and reassembly.add(p.header.session, p.header.seq,
                                                                                 p.header.total, p.payload):
                up.packets_ok += 1
        return snrs

    def close(self) -> None:
        self.rx.close()
