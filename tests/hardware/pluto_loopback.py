"""Real packets through one PlutoBackend with TX cabled to RX: send a burst, decode what comes back.

Shared by the hardware test (a real device) and by tests/radio/test_pluto_link.py (the same code on
a real-time EmulatedPluto behind a stand-in for adi.Pluto), so the procedure itself is tested in CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radio.backends.pluto import PlutoBackend
from radio.frame import Header
from radio.mcs import by_name
from radio.receiver import Receiver
from radio.transmitter import burst, packet_symbols

SAMPLES_PER_SYMBOL, ROLLOFF = 4, 0.25
TAIL_SAMPLES = 16384
READ_SAMPLES = 1 << 16


@dataclass
class LoopbackResult:
    """What came back: payloads by sequence number (CRC good), SNR per detected packet."""

    sent: dict[int, bytes]
    received: dict[int, bytes] = field(default_factory=dict)
    snr_db: list[float] = field(default_factory=list)
    samples_read: int = 0

    @property
    def delivered(self) -> bool:
        return self.received == self.sent

    @property
    def snr_db_mean(self) -> float:
        return float(np.mean(self.snr_db)) if self.snr_db else float("nan")


def loopback_packets(radio: PlutoBackend, packets: int = 8, payload_bytes: int = 200, mcs_name: str = "qpsk-1/2",
                     session: int = 4242, discard_first: bool = True) -> LoopbackResult:
    """Push one non-cyclic burst of `packets` packets with tx(), then read and decode the stream.

    On a real device the RX stream is read continuously by PlutoBackend's thread from the moment it
    opened, so the burst (which plays after tx() returned) is in the stream whenever rx() comes.
    Whatever was received before the burst is discarded first (discard_first); then `pending`
    (backlog, the rest of the burst's airtime, pipeline latency) plus a tail is read.
    """
    rng = np.random.default_rng(session)
    sent = {s: rng.bytes(payload_bytes) for s in range(packets)}
    mcs = by_name(mcs_name)
    iq = burst([packet_symbols(Header(mcs.index, session, s, packets, payload_bytes), p, mcs) for s, p in sent.items()],
               SAMPLES_PER_SYMBOL, ROLLOFF)
    receiver = Receiver(radio.sample_rate_hz, SAMPLES_PER_SYMBOL, ROLLOFF)
    if discard_first:
        radio.rx(radio.pending)
    radio.tx(iq)
    result = LoopbackResult(sent)
    remaining = max(radio.pending, len(iq)) + TAIL_SAMPLES
    found = []
    while remaining > 0:
        n = min(remaining, READ_SAMPLES)
        found += receiver.feed(radio.rx(n))
        result.samples_read += n
        remaining -= n
    for p in found + receiver.flush():
        if p.header is not None and p.header.session == session:
            result.snr_db.append(p.snr_db)
            if p.crc_ok:
                result.received[p.header.seq] = p.payload
    return result
