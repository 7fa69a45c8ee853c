"""host/xo_calibration.py: the correction's sign and size, the sound-correct-resound loop, its limits.

The edge and the air are a model here (a device whose carrier sits `ppm` off until trimmed, with measurement
noise); tests/integration/test_xo_cal.py runs the command over the emulated Pluto pair and real processes.
"""

from __future__ import annotations

import numpy as np
import pytest

from host.delivery import Delivery
from host.xo_calibration import (CalibrationError, calibrate, corrected_xo_hz, local_edge_config, relative_error_ppm,
                                 sounding_bytes, sounding_settings)
from radio.link import LinkSettings
from radio.oscillator import XO_NOMINAL_HZ
from testbed.messages import BurstReport

LO_HZ = 2.4e9


class Device:
    """A host Pluto whose crystal is `ppm` fast against the edge's; the driver takes whole Hz."""

    def __init__(self, ppm: float) -> None:
        self.ppm, self._xo = ppm, float(XO_NOMINAL_HZ)

    @property
    def xo_correction_hz(self) -> float:
        return self._xo

    @xo_correction_hz.setter
    def xo_correction_hz(self, value: float) -> None:
        self._xo = float(round(value))

    def cfo_hz(self) -> float:
        """The carrier offset the edge sees: lo x (true crystal / xo) - lo."""
        return LO_HZ * ((1 + self.ppm * 1e-6) * XO_NOMINAL_HZ / self._xo - 1.0)


class ModelSender:
    """Sender.deliver answered by the model: one BurstReport per sounding burst, some undetected."""

    def __init__(self, device: Device, noise_hz: float = 30.0, frame: str = "v2", gain: float = 1.0) -> None:
        self.device, self.noise_hz, self.frame, self.gain = device, noise_hz, frame, gain
        self.settings = sounding_settings(LinkSettings(1e6, 4, 0.15))
        self.rng = np.random.default_rng(1)
        self.sessions: list[int] = []

    def deliver(self, payload: bytes, session: int, deadline_s: float, report_timeout_s: float,
                apply: bool = True) -> Delivery:
        assert not apply and len(payload) == sounding_bytes(self.settings, 20)
        self.sessions.append(session)
        d = Delivery(session, len(payload), 0, frame=self.frame)
        for burst in range(20):
            detected = burst % 7 != 3
            cfo = self.gain * self.device.cfo_hz() + self.rng.normal(0.0, self.noise_hz) if detected else None
            d.burst_reports.append(BurstReport(session=session, burst=burst, detected=detected, cfo_hz=cfo,
                                               sco_ppm=None if cfo is None else cfo / LO_HZ * 1e6, snr_db=20.0))
        return d


def test_the_correction_cancels_a_fast_host_crystal() -> None:
    # the host's crystal runs 20 ppm fast: its carrier is 48 kHz above the edge's at 2.4 GHz
    dev = Device(20.0)
    e = relative_error_ppm(dev.cfo_hz(), LO_HZ)
    assert e == pytest.approx(20.0)
    dev.xo_correction_hz = corrected_xo_hz(dev.xo_correction_hz, e)
    assert dev.xo_correction_hz == 40_000_800  # the crystal's true frequency: telling the driver so cancels it
    assert abs(dev.cfo_hz()) < 0.03e-6 * LO_HZ  # within 1 Hz of 40 MHz


@pytest.mark.parametrize("ppm", [-47.0, -3.2, 0.3, 25.0, 49.9])
def test_calibrate_converges_within_half_a_ppm(ppm: float) -> None:
    dev = Device(ppm)
    seen = []
    result = calibrate(ModelSender(dev), dev, LO_HZ, 1000, on_sounding=lambda *a: seen.append(a))
    assert result.converged and abs(result.residual_ppm) < 0.5 and abs(dev.cfo_hz()) < 0.5e-6 * LO_HZ
    assert [i for i, _, _ in seen] == list(range(1, len(result.soundings) + 1))
    assert seen[-1][2] is None and all(new is not None for _, _, new in seen[:-1])
    assert result.corrections == (0 if abs(ppm) < 0.5 else 1)
    assert result.soundings[0].detected == 17 and result.soundings[0].bursts == 20


def test_a_biased_measurement_takes_more_iterations_and_stops_at_the_limit() -> None:
    dev = Device(30.0)
    result = calibrate(ModelSender(dev, gain=0.8), dev, LO_HZ, 0)  # the edge sees 80 % of the offset
    assert result.converged and result.corrections == 3  # 30 ppm, then 6, 1.2, 0.24 left (0.19 measured)
    dev = Device(30.0)
    stuck = calibrate(ModelSender(dev, gain=0.2), dev, LO_HZ, 0, max_corrections=2)
    assert not stuck.converged and stuck.corrections == 2 and len(stuck.soundings) == 3


def test_calibrate_refuses_what_it_cannot_measure_or_correct() -> None:
    with pytest.raises(CalibrationError, match="does not list frame:v2"):
        calibrate(ModelSender(Device(5.0), frame="v1"), Device(5.0), LO_HZ, 0)
    dev = Device(5.0)
    with pytest.raises(CalibrationError, match="more than 1000 ppm from 40 MHz"):
        calibrate(ModelSender(dev, gain=400.0), dev, LO_HZ, 0)  # 2000 ppm: not a crystal error


def test_a_local_edge_gets_the_config_without_the_host_s_trim(tmp_path) -> None:
    host = tmp_path / "config.yaml"
    dump = {"radio": {"backend": "pluto", "pluto": {"xo_correction_hz": 40_000_800, "lo_hz": 9.15e8}}}
    edge = local_edge_config(dump, host)
    import yaml

    assert edge != host and yaml.safe_load(edge.read_text())["radio"]["pluto"] == {"xo_correction_hz": None,
                                                                                  "lo_hz": 9.15e8}
    assert dump["radio"]["pluto"]["xo_correction_hz"] == 40_000_800  # the host's dump is untouched
    untrimmed = {"radio": {"pluto": {"xo_correction_hz": None}}}
    assert local_edge_config(untrimmed, host) == host
