"""radio.pluto.xo_correction_hz: bounds, applied when the device opens (real backend API, emulator), and the
emulated transmitter's DAC clock moving with it."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from radio.backends import SimBackend, emulated_pluto_backend
from radio.backends.pluto import PlutoBackend, PlutoSettings
from radio.backends.pluto_emulator import EmulatedPluto
from radio.channel import Channel
from radio.config import ChannelConfig, PlutoConfig, RadioConfig
from radio.errors import BackendError
from radio.oscillator import XO_NOMINAL_HZ

FS = 1.0e6
LO_HZ = 915.0e6


def test_config_bounds_are_1000_ppm_around_40_mhz() -> None:
    assert PlutoConfig().xo_correction_hz is None
    assert PlutoConfig(xo_correction_hz=40_000_800).xo_correction_hz == 40_000_800
    for bad in (39_959_999, 40_040_001):
        with pytest.raises(ValidationError, match="xo_correction_hz"):
            PlutoConfig(xo_correction_hz=bad)


def test_the_configured_correction_is_set_when_the_device_opens() -> None:
    from radio.backends.factory import make_backend
    from radio.transmitter import TX_POWER

    cfg = RadioConfig(backend="pluto", pluto={"emulated_ppm": 7.0, "xo_correction_hz": 40_000_280})
    with make_backend(cfg, ChannelConfig(snr_db=30.0), TX_POWER) as b:  # loopback: the pair's edge end
        assert b.xo_correction_hz == 40_000_280 and b.device.xo_correction == 40_000_280
        b.xo_correction_hz = 40_000_000.4  # the driver takes whole Hz
        assert b.device._get_iio_dev_attr("xo_correction") == 40_000_000
    with make_backend(RadioConfig(backend="pluto"), ChannelConfig(), TX_POWER) as untouched:
        assert untouched.xo_correction_hz == XO_NOMINAL_HZ


class RefusingPluto(EmulatedPluto):
    """A device whose driver refuses the attribute (as libiio reports EINVAL)."""

    def _set_iio_dev_attr(self, attr_name: str, value: int) -> None:
        raise OSError(22, "Invalid argument")


def test_a_refused_correction_is_one_backend_error() -> None:
    with pytest.raises(BackendError, match=r"refused xo_correction=40000100: OSError\(22"):
        PlutoBackend("ip:test", PlutoSettings(xo_correction_hz=40_000_100), device=RefusingPluto(), emulated=True)


def test_a_transmitting_device_s_correction_moves_its_dac_clock_too() -> None:
    """A tone's received frequency scales with the DAC clock: f (1 - s 1e-6) besides the carrier's -s 1e-6 lo_hz;
    each burst keeps its length."""
    air = SimBackend(Channel("awgn", 200.0, FS, 4, 1.0), FS, idle_start_samples=0)
    b = emulated_pluto_backend(None, sample_rate_hz=FS, lo_hz=LO_HZ, air_tx=air, tx_buffer_samples=8192,
                               xo_correction_hz=round(XO_NOMINAL_HZ * (1 + 200e-6)))  # 200 ppm: measurable
    tone_hz, n = 100e3, 60_000
    x = (0.5 * np.exp(2j * np.pi * tone_hz / FS * np.arange(n))).astype(np.complex64)
    sent = b.tx_burst([x[:20_000], x[20_000:]])
    y = air.rx(air.pending)
    assert sent == n and len(y) == 8 * 8192  # buffers of tx_buffer_samples, the last zero-padded: length kept
    seg = y[1000:n - 1000]
    f = np.angle(np.sum(seg[1:] * np.conj(seg[:-1]))) / (2 * np.pi) * FS
    expected = tone_hz * (1 - 200e-6) - 200e-6 * LO_HZ
    assert f == pytest.approx(expected, abs=1.0)
    # the tone is stretched: it ends 200 ppm x 60000 = 12 samples later than it was pushed
    level = np.median(np.abs(seg))
    assert np.abs(y[n + 3: n + 8]).min() > 0.8 * level and np.abs(y[n + 25:]).max() < 0.01 * level
