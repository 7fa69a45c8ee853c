"""One fountain-coded broadcast on the edge: a RaptorQ decoder fed with this session's packets, and its reports.

The edge takes whatever symbols it catches, in any order, from any burst; once the decoder rebuilds the payload
and its SHA-256 is the announced one, the session is done (and the payload goes to the apply pipeline).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from edge_node.session import BurstMeasurements
from radio.fountain import FountainDecoder
from radio.receiver import RxPacket
from testbed.messages import FountainProgress, FountainStart, SnrReport


class FountainSession:
    """The edge's state of one fountain session (same ownership rules as an EdgeSession)."""

    def __init__(self, start: FountainStart, peer: bytes, user: str | None = None) -> None:
        self.start, self.peer, self.user = start, peer, user
        self.decoder = FountainDecoder(start.payload_bytes, start.symbol_bytes)
        self.started = time.monotonic()
        self.burst = BurstMeasurements()
        self.bursts_done = 0
        self.finished = False
        self.payload: bytes | None = None  # the rebuilt payload, once it matched its SHA-256
        self.sha_mismatches = 0

    @property
    def session(self) -> int:
        return self.start.session

    def owned_by(self, peer: bytes, user: str | None) -> bool:
        """Its host: the same routing id and key, or (CurveZMQ) the same key from a new routing id."""
        return (peer == self.peer and user == self.user) or (user is not None and user == self.user)

    def matches(self, start: FountainStart) -> bool:
        """Same session and same payload: a resume (the host or this edge's link came back)."""
        return (start.session == self.session and start.payload_sha256 == self.start.payload_sha256
                and start.payload_bytes == self.start.payload_bytes and start.symbol_bytes == self.start.symbol_bytes)

    def on_packet(self, packet: RxPacket) -> None:
        """Measure every packet; feed this session's CRC-checked ones to the decoder."""
        self.burst.add(packet)
        h = packet.header
        if packet.payload is None or h is None or h.session != self.session or self.payload is not None:
            return
        self.decoder.add(packet.payload)
        if self.decoder.done:
            data = self.decoder.data
            if hashlib.sha256(data).hexdigest() == self.start.payload_sha256:
                self.payload = data
            else:  # the host sent symbols of another payload under this session: start over
                self.sha_mismatches += 1
                self.decoder = FountainDecoder(self.start.payload_bytes, self.start.symbol_bytes)

    @property
    def decoded(self) -> bool:
        return self.payload is not None

    def snr_report(self, burst: int, sample_index: int) -> SnrReport:
        return self.burst.report(self.session, burst, sample_index)

    def progress(self, burst: int) -> FountainProgress:
        b = self.burst
        mean = b.mean_snr_db
        return FountainProgress(session=self.session, burst=burst,
                                symbols_received=self.decoder.received,
                                symbols_needed=self.decoder.needed, packets_crc_ok=b.crc_ok,
                                packets_detected=b.detected,
                                mean_snr_db=None if mean is None else float(np.clip(mean, -100, 100)),
                                done=self.decoded, elapsed_s=time.monotonic() - self.started)
