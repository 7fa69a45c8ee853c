"""Measure packet error rate curves of every MCS through the full waveform receiver over AWGN."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from radio.backends.sim import SimBackend
from radio.channel import Channel
from radio.link import LinkSettings, packets_burst
from radio.mcs import MCS_TABLE, PER_CURVES_FILE, Mcs
from radio.receiver import Receiver
from radio.transmitter import TX_POWER


def packet_error_rate(mcs: Mcs, snr_db: float, packets: int, settings: LinkSettings, seed: int,
                      cfo_hz: float = 0.0) -> float:
    """Share of packets not delivered with a good CRC (missed detection and bad header count as errors)."""
    rng = np.random.default_rng(seed)
    chunks = {s: rng.bytes(settings.packet_payload_bytes) for s in range(packets)}
    iq = packets_burst(chunks, packets, 1, mcs, settings)
    channel = Channel("awgn", snr_db, settings.sample_rate_hz, settings.samples_per_symbol, TX_POWER,
                      cfo_hz=cfo_hz, seed=seed)
    backend = SimBackend(channel, settings.sample_rate_hz, seed=seed)
    backend.tx(iq)
    receiver = Receiver(settings.sample_rate_hz, settings.samples_per_symbol, settings.rolloff)
    got = receiver.feed(backend.rx(backend.pending + 8192)) + receiver.flush()
    good = {p.header.seq for p in got if p.payload is not None and p.payload == chunks.get(p.header.seq)}
    return 1.0 - len(good) / packets


def measure(settings: LinkSettings, snr_grid: np.ndarray, packets: int, seed: int = 1,
            cfo_hz: float = 0.0, progress=None) -> dict:
    """PER per MCS on the SNR grid; points far above the waterfall are filled with 0, far below with 1."""
    per: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    start = 0  # a faster MCS never works where the previous one failed every packet
    for mcs in MCS_TABLE:
        values: list[float] = []
        zeros = 0
        for k, snr in enumerate(snr_grid):
            if k < start:
                values.append(1.0)
                continue
            if zeros >= 2:
                values.append(0.0)
                continue
            p = packet_error_rate(mcs, float(snr), packets, settings, seed + 7919 * k, cfo_hz)
            values.append(p)
            zeros = zeros + 1 if p == 0.0 else 0
            if progress:
                progress(mcs.name, float(snr), p)
        start = next((k for k, v in enumerate(values) if v < 1.0), 0)
        per[mcs.name] = values
    return {
        "snr_db": [float(s) for s in snr_grid],
        "per": per,
        "packets_per_point": packets,
        "packet_payload_bytes": settings.packet_payload_bytes,
        "samples_per_symbol": settings.samples_per_symbol,
        "rolloff": settings.rolloff,
        "cfo_hz": cfo_hz,
        "channel": "awgn",
        "measured_s": round(time.perf_counter() - t0, 1),
        "command": "airlora mcs-table",
    }


def write(curves: dict, path: Path = PER_CURVES_FILE) -> None:
    path.write_text(json.dumps(curves, indent=1) + "\n")
