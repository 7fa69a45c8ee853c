"""A real ADALM-PLUTO through PlutoBackend: TX cabled to RX (through an attenuator), a tone burst must come back.

Run with: python -m pytest tests/hardware --pluto-uri ip:192.168.2.1
"""

from __future__ import annotations

import numpy as np
import pytest

from radio.backends import PlutoBackend

pytestmark = pytest.mark.hardware

FS = 1.0e6
TONE_HZ = 100.0e3
WINDOW = 4096


def window_powers(y: np.ndarray) -> np.ndarray:
    """Mean power of consecutive WINDOW-sample windows."""
    usable = len(y) // WINDOW * WINDOW
    return np.mean(np.abs(y[:usable].reshape(-1, WINDOW)) ** 2, axis=1)


def test_tone_burst_rises_above_noise_floor_at_its_frequency(pluto_uri: str) -> None:
    with PlutoBackend(pluto_uri, sample_rate_hz=FS, lo_hz=915e6, tx_attenuation_db=30.0,
                      rx_gain_mode="manual", rx_gain_db=30.0, rx_buffer_size=2**14) as radio:
        assert radio.sample_rate_hz == pytest.approx(FS, rel=1e-3)
        radio.rx(2**16)  # flush buffers filled before the settings took effect
        floor = np.median(window_powers(radio.rx(2**16)))

        n = np.arange(2**18)  # 262 ms of tone
        radio.tx((0.5 * np.exp(2j * np.pi * TONE_HZ / FS * n)).astype(np.complex64))
        y = radio.rx(2**19)

    powers = window_powers(y)
    best = int(np.argmax(powers))
    assert 10 * np.log10(powers[best] / floor) > 10.0, "no tone above the noise floor: is TX cabled to RX?"
    segment = y[best * WINDOW : (best + 1) * WINDOW] * np.hanning(WINDOW)
    freqs = np.fft.fftfreq(WINDOW, 1 / FS)
    peak_hz = freqs[int(np.argmax(np.abs(np.fft.fft(segment))))]
    assert peak_hz == pytest.approx(TONE_HZ, abs=3 * FS / WINDOW)
