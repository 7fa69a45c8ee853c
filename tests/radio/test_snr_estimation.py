"""Per-packet SNR estimates of the receiver against the channel's true SNR (through SimBackend, with CFO)."""

from __future__ import annotations

import numpy as np
import pytest

from radio.backends.sim import SimBackend
from radio.channel import Channel
from radio.frame import Header
from radio.mcs import by_name
from radio.receiver import Receiver, RxPacket
from radio.transmitter import TX_POWER, burst, packet_symbols

FS, SPS, ROLLOFF = 1.0e6, 4, 0.25


def packets_through(channel: Channel, n_packets: int, payload_bytes: int, mcs_name: str, seed: int
                    ) -> tuple[list[RxPacket], int]:
    """Send n_packets one burst each through a SimBackend; (received packets, samples per packet)."""
    mcs = by_name(mcs_name)
    backend = SimBackend(channel, FS, seed=seed)
    rx = Receiver(FS, SPS, ROLLOFF)
    rng = np.random.default_rng(seed)
    out: list[RxPacket] = []
    length = 0
    for k in range(n_packets):
        payload = rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes()
        symbols = packet_symbols(Header(mcs.index, 1, k, n_packets, payload_bytes), payload, mcs)
        length = symbols.size * SPS
        backend.tx(burst([symbols], SPS, ROLLOFF))
        out += rx.feed(backend.rx(backend.pending + 200))
    out += rx.flush()
    return out, length


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 10.0, 20.0, 30.0])
def test_awgn_snr_estimate_mean_absolute_error_below_half_a_db(snr_db: float) -> None:
    channel = Channel("awgn", snr_db, FS, SPS, TX_POWER, cfo_hz=0.01 * FS, seed=int(snr_db) + 3)
    packets, _ = packets_through(channel, 20, 1024, "qpsk-1/2", seed=int(snr_db) + 3)
    assert len(packets) == 20  # every packet detected, even where its payload fails at 0 dB
    est = np.array([p.snr_db for p in packets])
    mae = float(np.mean(np.abs(est - snr_db)))
    assert mae < 0.5, f"MAE {mae:.2f} dB at {snr_db} dB: {np.round(est, 2)}"
    assert abs(float(np.mean(est)) - snr_db) < 0.3  # no bias hiding behind the MAE
    if snr_db >= 10:  # EVM on decisions agrees too once decisions are reliable
        evm = np.array([p.evm_snr_db for p in packets])
        assert np.all(np.abs(evm - snr_db) < 1.0)


def test_low_snr_estimate_with_the_most_robust_mcs() -> None:
    channel = Channel("awgn", 0.0, FS, SPS, TX_POWER, cfo_hz=-0.01 * FS, seed=11)
    packets, _ = packets_through(channel, 12, 1024, "bpsk-1/4", seed=11)
    assert len(packets) == 12
    assert sum(p.payload is not None for p in packets) >= 10
    assert np.mean(np.abs([p.snr_db for p in packets])) < 0.5


def test_rayleigh_fading_is_tracked_per_packet() -> None:
    """Block fading longer than a packet: each estimate follows |h|^2 * SNR of its own packet."""
    snr_db, coherence, seed = 20.0, 50_000, 5
    channel = Channel("rayleigh", snr_db, FS, SPS, TX_POWER, cfo_hz=0.01 * FS, coherence_samples=coherence,
                      seed=seed)
    packets, length = packets_through(channel, 40, 400, "qpsk-1/2", seed=seed)
    # the same seed and coherence without noise gives the gain at every stream sample
    gains = Channel("rayleigh", 200.0, FS, SPS, TX_POWER, coherence_samples=coherence, seed=seed).apply(
        np.ones(channel.samples_processed, np.complex64))
    est, true = [], []
    for p in packets:
        span = gains[max(p.start_sample - 600, 0): p.start_sample + length]
        if np.ptp(np.abs(span)) > 1e-4:
            continue  # a fading block boundary inside this packet
        est.append(p.snr_db)
        true.append(snr_db + 10 * np.log10(abs(span[0]) ** 2))
    est, true = np.array(est), np.array(true)
    assert len(est) >= 20
    assert np.ptp(true) > 6.0  # the fading really moved the SNR
    assert np.corrcoef(est, true)[0, 1] > 0.97
    assert np.mean(np.abs(est - true)) < 0.6
