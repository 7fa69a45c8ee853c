"""The radio link over one backend: send bytes as packets, repeat what failed, adapt the MCS.

`transfer` runs both ends in one process (sim, emulated Pluto, or a loopback-cabled device): the host
side builds bursts, the backend carries them, the receiver measures SNR per packet and the missing
packets are sent again, at an MCS picked from the SNR the receiver measured in the previous round.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from radio import mcs as mcs_module
from radio.backends.base import RadioBackend
from radio.errors import LinkError
from radio.frame import MAX_PAYLOAD_BYTES, Header
from radio.interleave import DEFAULT_INTERLEAVE_SYMBOLS
from radio.mcs import MCS_TABLE, Mcs
from radio.reassembly import Reassembly, split
from radio.receiver import Receiver, RxPacket
from radio.transmitter import burst, packet_symbols

if TYPE_CHECKING:
    from radio.config import RadioConfig

RX_MARGIN_SAMPLES = 16384  # read this much beyond a burst: start offset, delay and filter tails
PROBE_PACKETS = 4  # packets of the first round when no SNR is known yet (a few: fading varies per packet)


@dataclass
class LinkSettings:
    """Plain values the link needs (taken from testbed.yaml's radio section)."""

    sample_rate_hz: float
    samples_per_symbol: int = 4
    rolloff: float = 0.25
    packet_payload_bytes: int = 1024
    target_per: float = 0.1
    max_rounds: int = 30
    mcs: str = "auto"  # 'auto' or an MCS name
    frame: str = "v1"  # 'v1' K=7 packets (transfer), 'v2' LDPC bursts (radio.link_v2.transfer_v2)
    burst_airtime_s: float = 1.0  # v2: longest burst on air
    window_bursts: int = 2  # v2: bursts that may await a report at once
    interleave_symbols: int = DEFAULT_INTERLEAVE_SYMBOLS  # v2: symbols an interleaving group spans (0: off)

    @classmethod
    def from_config(cls, radio: RadioConfig) -> LinkSettings:
        """The link's numbers from testbed.yaml's radio section."""
        return cls(radio.sample_rate_hz, radio.samples_per_symbol, radio.rolloff, radio.packet_payload_bytes,
                   radio.target_per, radio.max_rounds, radio.mcs, radio.frame, radio.burst_airtime_s,
                   radio.window_bursts, radio.interleave_symbols)

    @property
    def occupied_bandwidth_hz(self) -> float:
        """Bandwidth the RRC spectrum occupies: (1 + roll-off) x symbol rate."""
        return (1.0 + self.rolloff) * self.sample_rate_hz / self.samples_per_symbol


@dataclass
class RoundReport:
    """One transmission round."""

    mcs: str
    packets_sent: int
    packets_ok: int
    samples_sent: int
    snr_db_measured: float


@dataclass
class TransferReport:
    """What a transfer did, measured."""

    delivered: bool
    data: bytes | None
    packets_total: int
    packets_sent: int = 0
    packets_ok: int = 0
    samples_sent: int = 0
    rx_wall_s: float = 0.0
    snr_db_packets: list[float] = field(default_factory=list)
    rounds: list[RoundReport] = field(default_factory=list)
    first_packet: RxPacket | None = None  # one decoded packet with its equalized symbols

    @property
    def packets_retransmitted(self) -> int:
        return self.packets_sent - self.packets_total

    @property
    def snr_db_measured(self) -> float:
        return float(np.mean(self.snr_db_packets)) if self.snr_db_packets else float("nan")


def pick_mcs(settings: LinkSettings, snr_db: float | None) -> Mcs:
    """The configured MCS, or (auto) the one the measured SNR supports; the most robust without SNR."""
    if settings.mcs != "auto":
        return mcs_module.by_name(settings.mcs)
    if snr_db is None or not np.isfinite(snr_db):
        return MCS_TABLE[0]
    return mcs_module.select(snr_db, settings.target_per)


def packets_burst(chunks: dict[int, bytes], total: int, session: int, mcs: Mcs, settings: LinkSettings) -> np.ndarray:
    """IQ of one burst carrying the given packets (seq -> payload) at one MCS."""
    symbols = [packet_symbols(Header(mcs.index, session, seq, total, len(p)), p, mcs, ) for seq, p in chunks.items()]
    return burst(symbols, settings.samples_per_symbol, settings.rolloff)


def transfer(data: bytes, backend: RadioBackend, settings: LinkSettings, session: int = 1,
             snr_hint_db: float | None = None, keep_symbols: bool = False,
             on_round: Callable[[TransferReport], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> TransferReport:
    """Deliver data over the backend with selective repeat; the report says what happened.

    Without an SNR hint and with MCS 'auto', the first round sends only packet 0 as a probe: the receiver's estimate from it picks the MCS of the next round. The probe goes out at the
    fastest MCS (shortest airtime): SNR is measured on its preamble whether or not it decodes.
    `on_round(report)` is called after each round; `on_progress(packets_delivered, packets_total)` after each
    block of received samples (for a progress bar: the caller draws it).
    """
    if not 1 <= settings.packet_payload_bytes <= MAX_PAYLOAD_BYTES:
        raise LinkError(f"radio.packet_payload_bytes must be in 1..{MAX_PAYLOAD_BYTES}")
    if not data:
        raise LinkError("nothing to send: the payload is empty")
    chunks = split(data, settings.packet_payload_bytes)
    total = len(chunks)
    reassembly = Reassembly(session, total)
    receiver = Receiver(settings.sample_rate_hz, settings.samples_per_symbol, settings.rolloff,
                        keep_symbols=keep_symbols)
    report = TransferReport(False, None, total)
    snr_db = snr_hint_db
    probe = settings.mcs == "auto" and snr_hint_db is None
    for round_index in range(settings.max_rounds):
        missing = reassembly.missing()
        if probe and round_index == 0:
            missing = missing[:PROBE_PACKETS]
        mcs = MCS_TABLE[-1] if probe and round_index == 0 else pick_mcs(settings, snr_db)
        iq = packets_burst({s: chunks[s] for s in missing}, total, session, mcs, settings)
        backend.tx(iq)
        got: list[RxPacket] = []
        ok = 0
        for block in _receive(backend, receiver, iq.size, report):
            got += block
            for packet in block:
                if packet.header is not None and packet.header.session == session:
                    report.snr_db_packets.append(packet.snr_db)
                elif packet.header is None and np.isfinite(packet.snr_db):
                    report.snr_db_packets.append(packet.snr_db)
                if packet.payload is not None and reassembly.add(packet.header.session, packet.header.seq,
                                                                 packet.header.total, packet.payload):
                    ok += 1
                    if keep_symbols and report.first_packet is None:
                        report.first_packet = packet
            if on_progress is not None:
                on_progress(reassembly.received, total)
        round_snr = [p.snr_db for p in got if np.isfinite(p.snr_db)]
        snr_round = float(np.mean(round_snr)) if round_snr else float("nan")
        if round_snr:
            snr_db = mcs_module.selection_snr_db(round_snr)
        report.packets_sent += len(missing)
        report.packets_ok += ok
        report.samples_sent += iq.size
        report.rounds.append(RoundReport(mcs.name, len(missing), ok, iq.size, snr_round))
        if on_round is not None:
            on_round(report)
        if reassembly.complete:
            report.data = reassembly.data()
            report.delivered = hashlib.sha256(report.data).digest() == hashlib.sha256(data).digest()
            return report
    return report


def _receive(backend: RadioBackend, receiver: Receiver, burst_samples: int,
             report: TransferReport) -> Iterator[list[RxPacket]]:
    """Read the burst (plus a margin) from the backend through the receiver; the packets of each block read."""
    remaining = max(burst_samples + RX_MARGIN_SAMPLES, backend.pending + 4096)
    while remaining > 0:
        n = min(remaining, 1 << 18)
        samples = backend.rx(n)
        t0 = time.perf_counter()
        packets = receiver.feed(samples)
        report.rx_wall_s += time.perf_counter() - t0
        remaining -= n
        yield packets
