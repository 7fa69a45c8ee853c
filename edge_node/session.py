"""One transfer on the edge: reassembly, per-burst measurements, and what to tell the host."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from radio.mcs import by_index
from radio.reassembly import Reassembly
from radio.receiver import RxPacket
from testbed.messages import (MAX_PACKETS_PER_REPORT, MAX_RANGES, MissingRequest, PacketSnr, SessionStart, SnrReport,
                              seqs_to_ranges)

CONSTELLATION_POINTS = 1024


@dataclass
class BurstMeasurements:
    """What the receiver saw during one burst (bounded: a stranger's packets on the air cannot grow it)."""

    packets: list[PacketSnr] = field(default_factory=list)  # the first MAX_PACKETS_PER_REPORT with a header
    snr_sum_db: float = 0.0  # over every detected packet with a finite SNR, including failed headers
    snr_count: int = 0
    detected: int = 0
    crc_ok: int = 0
    constellation: list[list[float]] = field(default_factory=list)
    constellation_mcs: str | None = None

    @property
    def mean_snr_db(self) -> float | None:
        """Mean SNR over the detected packets; None when none had one."""
        return self.snr_sum_db / self.snr_count if self.snr_count else None

    def add(self, packet: RxPacket) -> None:
        self.detected += 1
        if np.isfinite(packet.snr_db):
            self.snr_sum_db += float(np.clip(packet.snr_db, -100, 100))
            self.snr_count += 1
        if packet.header is not None and np.isfinite(packet.snr_db) and len(self.packets) < MAX_PACKETS_PER_REPORT:
            self.packets.append(PacketSnr(seq=packet.header.seq, snr_db=float(np.clip(packet.snr_db, -100, 100)),
                                          crc_ok=packet.crc_ok))
        self.crc_ok += int(packet.crc_ok)
        if packet.crc_ok and not self.constellation and packet.symbols is not None:
            z = packet.symbols[:CONSTELLATION_POINTS]
            self.constellation = [[float(v.real), float(v.imag)] for v in z if np.isfinite(v)]
            self.constellation_mcs = by_index(packet.header.mcs_index).name

    def report(self, session: int, burst: int, sample_index: int) -> SnrReport:
        """The SnrReport of this burst of a session (sample_index: where the burst sat on the stream)."""
        mean = self.mean_snr_db
        return SnrReport(session=session, burst=burst, sample_index=sample_index, time_s=time.time(),
                         mean_snr_db=None if mean is None else float(np.clip(mean, -100, 100)),
                         packets_detected=self.detected, packets_crc_ok=self.crc_ok,
                         packets=self.packets[:MAX_PACKETS_PER_REPORT],
                         constellation=self.constellation, constellation_mcs=self.constellation_mcs)


class EdgeSession:
    """The edge's state of one session: started by SessionStart, fed with decoded packets."""

    def __init__(self, start: SessionStart, peer: bytes, user: str | None = None) -> None:
        self.start, self.peer = start, peer
        self.user = user  # the owner's CurveZMQ key (Z85) when the control plane authenticates hosts
        self.reassembly = Reassembly(start.session, start.packet_count, max_bytes=start.payload_bytes)
        self.started = time.monotonic()
        self.burst = BurstMeasurements()
        self.bursts_done = 0
        self.receptions = 0  # packets accepted, duplicates excluded
        self.finished = False

    @property
    def session(self) -> int:
        return self.start.session

    def owned_by(self, peer: bytes, user: str | None) -> bool:
        """Whether a host is this session's owner: its routing id with the same key, or (CurveZMQ) the same key
        from a new routing id (the owner's host restarted)."""
        return (peer == self.peer and user == self.user) or (user is not None and user == self.user)

    def matches(self, start: SessionStart) -> bool:
        """Same session and same payload: a resume after the host or the link came back."""
        return start.session == self.session and start.payload_sha256 == self.start.payload_sha256 \
            and start.packet_count == self.start.packet_count

    def on_packet(self, packet: RxPacket) -> None:
        self.burst.add(packet)
        h = packet.header
        if packet.payload is not None and h is not None and h.session == self.session:
            if self.reassembly.add(h.session, h.seq, h.total, packet.payload):
                self.receptions += 1

    def snr_report(self, burst: int, sample_index: int) -> SnrReport:
        return self.burst.report(self.session, burst, sample_index)

    def missing_request(self, repair_round: int) -> MissingRequest:
        missing = self.reassembly.missing()
        ranges = seqs_to_ranges(missing)
        return MissingRequest(session=self.session, round=repair_round, ranges=ranges[:MAX_RANGES],
                              missing_count=len(missing), truncated=len(ranges) > MAX_RANGES)

    def payload_if_valid(self) -> bytes | None:
        """The reassembled payload when complete and its SHA-256 is the announced one."""
        if not self.reassembly.complete:
            return None
        data = self.reassembly.data()
        return data if hashlib.sha256(data).hexdigest() == self.start.payload_sha256 else None
