"""A Pluto that goes away: every device read surfaces as BackendError; the emulator keeps the driver's ranges."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from radio.ad9361 import on_attenuation_step, rx_gain_range_db
from radio.backends import EmulatedPluto, PlutoBackend
from radio.errors import BackendError


class Unpluggable:
    """An EmulatedPluto whose USB cable can be pulled: then every attribute and call raises BrokenPipeError."""

    def __init__(self, device: EmulatedPluto) -> None:
        object.__setattr__(self, "_device", device)
        object.__setattr__(self, "unplugged", False)

    def unplug(self) -> None:
        object.__setattr__(self, "unplugged", True)

    def __getattr__(self, name: str) -> Any:
        if self.unplugged:
            raise BrokenPipeError(32, "Broken pipe")
        return getattr(self._device, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.unplugged:
            raise BrokenPipeError(32, "Broken pipe")
        setattr(self._device, name, value)


def backend(stream_rx: bool) -> tuple[PlutoBackend, Unpluggable]:
    device = Unpluggable(EmulatedPluto(channel=None, idle_start_samples=0, realtime=stream_rx))
    return PlutoBackend("ip:192.0.2.1", device=device, stream_rx=stream_rx, rx_buffer_size=1024), device


@pytest.mark.parametrize("stream_rx", [False, True])
def test_a_disconnect_is_a_backend_error_in_rx_tx_and_every_getter(stream_rx: bool) -> None:
    b, device = backend(stream_rx)
    assert len(b.rx(2048)) == 2048
    device.unplug()
    with pytest.raises(BackendError, match="Broken pipe"):
        b.rx(1 << 16)
    with pytest.raises(BackendError, match="Broken pipe"):
        b.tx(np.full(4096, 0.1, np.complex64))  # a new length: the TX buffer is destroyed first
    for name in ("lo_hz", "rf_bandwidth_hz", "tx_attenuation_db", "rx_gain_mode", "rx_gain_db"):
        with pytest.raises(BackendError, match=f"Pluto at ip:192.0.2.1: reading .* failed: .*Broken pipe"):
            getattr(b, name)
    assert b.sample_rate_hz == 1.0e6  # read back when it was set, not from the device for every chunk
    with pytest.raises(BackendError, match="Broken pipe"):
        b.close()
    assert b.closed


def test_the_emulator_clamps_tx_bandwidth_to_40_mhz_like_the_driver() -> None:
    device = EmulatedPluto(channel=None)
    device.tx_rf_bandwidth = 56_000_000
    device.rx_rf_bandwidth = 56_000_000
    assert (device.tx_rf_bandwidth, device.rx_rf_bandwidth) == (40_000_000, 56_000_000)


def test_driver_ranges() -> None:
    assert rx_gain_range_db(915e6) == (-1, 73) and rx_gain_range_db(2.4e9) == (-3, 71)
    assert on_attenuation_step(89.75) and on_attenuation_step(0.0) and not on_attenuation_step(10.1)
