"""Emulated crystal errors: the seeded pair, its relative error in the edge's channel, xo_correction."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from pydantic import ValidationError

from radio.backends import SimBackend, emulated_pluto_backend, make_backend
from radio.channel import Channel
from radio.config import ChannelConfig, PlutoConfig, RadioConfig
from radio.oscillator import XO_NOMINAL_HZ, emulated_ppm_pair, pair_ppm, with_clock_offset, xo_ppm_shift

FS = 1.0e6
LO_HZ = 915.0e6


def phase_slope_hz(y: np.ndarray) -> float:
    """Frequency of a (noisy) rotating constant: mean phase step between neighbours, in Hz."""
    return float(np.angle(np.sum(y[1:] * np.conj(y[:-1]))) / (2 * np.pi) * FS)


def test_pair_draws_are_seeded_within_25_ppm_and_independent() -> None:
    assert emulated_ppm_pair(7) == emulated_ppm_pair(7)
    host, edge = emulated_ppm_pair(7)
    assert host != edge and emulated_ppm_pair(8) != (host, edge)
    draws = np.array([emulated_ppm_pair(s) for s in range(400)])
    assert np.all(np.abs(draws) <= 25.0)
    assert np.std(draws[:, 0]) == pytest.approx(50 / np.sqrt(12), rel=0.15)  # U(-25, 25)
    assert abs(np.corrcoef(draws.T)[0, 1]) < 0.15  # host and edge drawn independently
    assert np.max(np.abs(draws[:, 0] - draws[:, 1])) > 35.0  # the pair spans up to 50 ppm


def test_configured_ppm_is_the_hosts_error_against_an_exact_edge() -> None:
    assert pair_ppm(None, 3) == emulated_ppm_pair(3)
    assert pair_ppm(12.5, 3) == (12.5, 0.0)
    cfg = with_clock_offset(ChannelConfig(cfo_hz=100.0, sco_ppm=1.0), 20.0, LO_HZ)
    assert (cfg.cfo_hz, cfg.sco_ppm) == (pytest.approx(100.0 + 18_300.0), 21.0)


def test_emulated_ppm_config_bounds_and_null() -> None:
    assert PlutoConfig().emulated_ppm is None and PlutoConfig(emulated_ppm=0.0).emulated_ppm == 0.0  # null: drawn
    with pytest.raises(ValidationError, match="emulated_ppm"):
        PlutoConfig(emulated_ppm=150.0)


def test_edge_channel_carries_the_pairs_relative_error_as_measured_cfo() -> None:
    seed = 11
    host, edge = emulated_ppm_pair(seed)
    e = host - edge
    radio = RadioConfig(backend="pluto", sample_rate_hz=FS, pluto=PlutoConfig(emulated_ppm=None, lo_hz=LO_HZ))
    b = make_backend(radio, ChannelConfig(snr_db=40.0, cfo_hz=250.0, seed=seed), 0.25)
    assert b.channel.cfo_hz == pytest.approx(250.0 + e * 1e-6 * LO_HZ)
    assert b.channel.sco_ppm == pytest.approx(e) and abs(e) > 1.0
    assert b.device.crystal_ppm == edge
    b.tx(np.full(60_000, 0.5, np.complex64))
    y = b.rx(70_000)
    start = int(np.argmax(np.abs(y) > 0.1 * np.max(np.abs(y))))
    assert phase_slope_hz(y[start + 100:start + 50_000]) == pytest.approx(250.0 + e * 1e-6 * LO_HZ, abs=5.0)
    # emulated_ppm 0 (two exact crystals) leaves the channel as configured: no resampler, no extra CFO
    plain = make_backend(RadioConfig(backend="pluto", sample_rate_hz=FS, pluto=PlutoConfig(emulated_ppm=0.0)),
                         ChannelConfig(cfo_hz=250.0), 0.25)
    assert plain.channel.cfo_hz == 250.0 and plain.channel.input_samples_for(1000) == 1000


def test_xo_correction_of_the_receiving_device_moves_the_channel() -> None:
    air = SimBackend(Channel("awgn", 200.0, FS, 4, 1.0), FS, idle_start_samples=0)
    ch = Channel("awgn", 40.0, FS, 4, 0.25, sco_ppm=-12.0, cfo_hz=-12e-6 * LO_HZ)
    b = emulated_pluto_backend(ch, sample_rate_hz=FS, lo_hz=LO_HZ, air_rx=air, crystal_ppm=12.0)
    dev = b.device
    assert dev.xo_correction == XO_NOMINAL_HZ and dev.effective_ppm == pytest.approx(12.0)
    dev.xo_correction = round(XO_NOMINAL_HZ * (1 + 12e-6))  # the crystal's true frequency
    assert abs(dev.effective_ppm) < 0.01
    assert ch.cfo_hz == pytest.approx(0.0, abs=0.02 * LO_HZ * 1e-6) and abs(ch.sco_ppm_now) < 0.01
    dev._set_iio_dev_attr("xo_correction", XO_NOMINAL_HZ)  # pyadi-iio's device-attribute path
    assert dev._get_iio_dev_attr("xo_correction") == XO_NOMINAL_HZ and ch.sco_ppm_now == pytest.approx(-12.0)
    with pytest.raises(OSError) as info:
        dev.xo_correction = XO_NOMINAL_HZ + 50_000  # 1250 ppm
    assert info.value.errno == errno.EINVAL
    assert xo_ppm_shift(XO_NOMINAL_HZ * 1.00001) == pytest.approx(10.0)


def test_xo_correction_of_a_transmitting_device_moves_its_carrier() -> None:
    air = SimBackend(Channel("awgn", 200.0, FS, 4, 1.0), FS, idle_start_samples=0)
    b = emulated_pluto_backend(None, sample_rate_hz=FS, lo_hz=LO_HZ, air_tx=air, crystal_ppm=5.0)
    b.device.xo_correction = round(XO_NOMINAL_HZ * (1 + 5e-6))
    b.tx(np.full(40_000, 0.5, np.complex64))
    y = air.rx(40_000)
    assert phase_slope_hz(y[10:-10]) == pytest.approx(-5e-6 * LO_HZ, abs=2.0)  # -4575 Hz
    # a device cabled to itself: its TX and RX move together, the channel stays
    ch = Channel("awgn", 40.0, FS, 4, 0.25)
    loop = emulated_pluto_backend(ch, sample_rate_hz=FS, lo_hz=LO_HZ)
    loop.device.xo_correction = XO_NOMINAL_HZ + 400
    assert ch.cfo_hz == 0.0 and ch.sco_ppm_now == 0.0
