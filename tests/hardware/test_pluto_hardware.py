"""A real ADALM-PLUTO through PlutoBackend, TX cabled to RX through an attenuator.

Run with: python -m pytest -s tests/hardware --pluto-uri ip:192.168.2.1
Levels (defaults suit a 30-40 dB attenuator in the cable) can be changed with the environment
variables AIRLORA_PLUTO_TX_ATTENUATION_DB, AIRLORA_PLUTO_RX_GAIN_DB and AIRLORA_PLUTO_LO_HZ.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from radio.backends import PlutoBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pluto_loopback import loopback_packets  # noqa: E402

pytestmark = pytest.mark.hardware

FS = 1.0e6
TONE_HZ = 100.0e3
WINDOW = 4096


def open_radio(uri: str, **kw) -> PlutoBackend:
    """The device with this test's settings (manual gain: an AGC chases the gaps between bursts)."""
    settings = dict(sample_rate_hz=FS, lo_hz=float(os.environ.get("AIRLORA_PLUTO_LO_HZ", 915e6)),
                    tx_attenuation_db=float(os.environ.get("AIRLORA_PLUTO_TX_ATTENUATION_DB", 10.0)),
                    rx_gain_mode="manual", rx_gain_db=float(os.environ.get("AIRLORA_PLUTO_RX_GAIN_DB", 30.0)),
                    rx_buffer_size=2**14)
    settings.update(kw)
    return PlutoBackend(uri, **settings)


def window_powers(y: np.ndarray) -> np.ndarray:
    """Mean power of consecutive WINDOW-sample windows."""
    usable = len(y) // WINDOW * WINDOW
    return np.mean(np.abs(y[:usable].reshape(-1, WINDOW)) ** 2, axis=1)


def test_tone_burst_rises_above_noise_floor_at_its_frequency(pluto_uri: str) -> None:
    with open_radio(pluto_uri) as radio:
        assert radio.sample_rate_hz == pytest.approx(FS, rel=1e-3) and radio.streaming
        radio.rx(2**16)  # flush buffers filled before the settings took effect
        floor = np.median(window_powers(radio.rx(2**16)))

        n = np.arange(2**18)  # 262 ms of tone
        radio.tx((0.5 * np.exp(2j * np.pi * TONE_HZ / FS * n)).astype(np.complex64))
        y = radio.rx(radio.pending + 2**16)

    powers = window_powers(y)
    best = int(np.argmax(powers))
    assert 10 * np.log10(powers[best] / floor) > 10.0, "no tone above the noise floor: is TX cabled to RX?"
    segment = y[best * WINDOW : (best + 1) * WINDOW] * np.hanning(WINDOW)
    freqs = np.fft.fftfreq(WINDOW, 1 / FS)
    peak_hz = freqs[int(np.argmax(np.abs(np.fft.fft(segment))))]
    assert peak_hz == pytest.approx(TONE_HZ, abs=3 * FS / WINDOW)


def test_packets_sent_through_pluto_come_back_decoded(pluto_uri: str, record_property) -> None:
    with open_radio(pluto_uri) as radio:
        radio.rx(2**16)  # settle
        result = loopback_packets(radio, packets=8)
        first = dict(result.received)
        again = loopback_packets(radio, packets=8, mcs_name="16qam-1/2", session=4243)  # a burst of another length
        overflow = radio.rx_overflow_samples
        peak = float(np.max(np.abs(radio.rx(2**14))))
    record_property("snr_db", result.snr_db_mean)
    print(f"\nPluto {pluto_uri}: qpsk-1/2 {len(first)}/8 packets, SNR measured {result.snr_db_mean:.1f} dB; "
          f"16qam-1/2 {len(again.received)}/8, {again.snr_db_mean:.1f} dB; idle peak {peak:.3f} FS; "
          f"overflow {overflow} samples")
    assert result.snr_db, "no packet detected: is TX cabled to RX, are the gains right?"
    assert result.delivered, f"qpsk-1/2: {sorted(first)} of 8 decoded at {result.snr_db_mean:.1f} dB"
    assert again.delivered, f"16qam-1/2: {sorted(again.received)} of 8 decoded at {again.snr_db_mean:.1f} dB"
    assert overflow == 0
