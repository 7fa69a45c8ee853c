"""Oscillator calibration (`airlora xo-cal`): measure the host's crystal against the edge's over the air, trim it.

One 40 MHz crystal drives a Pluto's LO and sample clock. A sounding is one frame v2 session (apply: false) of
short probe bursts; the edge's BurstReport carries each burst's carrier offset, and their median divided by the
carrier gives the relative crystal error e = median(cfo_hz) / lo_hz (ppm; e > 0: the host's carrier is above
the edge's, radio/oscillator.py). The host then tells its AD9361 driver another reference frequency
(`xo_correction`): the driver derives LO and sample clock as if the crystal ran at xo, so the true carrier is
lo_hz x (true crystal / xo) and moves by the factor xo_old / xo_new. Cancelling e takes
xo_new = xo_old x (1 + e 1e-6). Re-measure, repeat (at most `max_corrections` times) until |e| < tolerance.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from host.sender import Sender
from radio.airtime import codeword_bytes, max_burst_codewords
from radio.arq import PROBE_MCS
from radio.link import LinkSettings
from radio.mcs import by_name
from radio.oscillator import XO_NOMINAL_HZ
from testbed.errors import AirLoraError

SOUNDING_BURSTS = 20
"""Probe bursts per sounding."""
SOUNDING_AIRTIME_S = 0.05
"""Airtime of each sounding burst (the shortest v2 burst, a probe's)."""
TOLERANCE_PPM = 0.5
"""Calibrated when |e| is below this."""
MAX_CORRECTIONS = 3
"""xo_correction writes before giving up (each is followed by a sounding)."""
XO_LIMIT_PPM = 1000.0
"""A correction further than this from 40 MHz is refused (radio.pluto.xo_correction_hz's bounds)."""


class CalibrationError(AirLoraError):
    """The calibration could not measure or correct the offset."""


class XoTrim(Protocol):
    """A device whose reference frequency can be trimmed (radio.backends.pluto.PlutoBackend)."""

    xo_correction_hz: float


def relative_error_ppm(cfo_hz: float, lo_hz: float) -> float:
    """The host's crystal error against the edge's, in ppm, from a carrier offset measured at the edge."""
    return float(cfo_hz) / float(lo_hz) * 1e6


def corrected_xo_hz(xo_hz: float, error_ppm: float) -> float:
    """The xo_correction that cancels a measured error e: the carrier scales by xo_old / xo_new = 1 / (1 + e 1e-6)."""
    return float(xo_hz) * (1.0 + float(error_ppm) * 1e-6)


def sounding_settings(settings: LinkSettings) -> LinkSettings:
    """The waveform of a sounding: frame v2, every burst a SOUNDING_AIRTIME_S probe at the probe MCS."""
    return dataclasses.replace(settings, frame="v2", mcs=PROBE_MCS, burst_airtime_s=SOUNDING_AIRTIME_S)


def sounding_bytes(settings: LinkSettings, bursts: int) -> int:
    """Payload bytes that fill `bursts` sounding bursts."""
    mcs = by_name(PROBE_MCS)
    return bursts * max_burst_codewords(settings, mcs, SOUNDING_AIRTIME_S) * codeword_bytes(mcs)


@dataclass(frozen=True)
class Sounding:
    """One sounding: the edge's median carrier offset over the bursts it detected, at the host's xo_correction."""

    xo_correction_hz: float
    bursts: int
    """bursts the edge reported on"""
    detected: int
    cfo_hz: float
    error_ppm: float
    sco_ppm: float | None
    snr_db: float | None


def sound(sender: Sender, lo_hz: float, xo_hz: float, session: int, bursts: int = SOUNDING_BURSTS,
          deadline_s: float = 120.0, report_timeout_s: float = 10.0) -> Sounding:
    """One sounding session (not applied); CalibrationError when the edge detected no burst."""
    d = sender.deliver(os.urandom(sounding_bytes(sender.settings, bursts)), session, deadline_s, report_timeout_s,
                       apply=False)
    if d.frame != "v2":
        raise CalibrationError("the edge does not list frame:v2, so it reports no carrier offset per burst")
    found = [r for r in d.burst_reports if r.detected and r.cfo_hz is not None]
    if not found:
        raise CalibrationError(f"the edge detected none of the {len(d.burst_reports)} sounding bursts")
    cfo = float(np.median([r.cfo_hz for r in found]))
    sco = [r.sco_ppm for r in found if r.sco_ppm is not None]
    snr = [r.snr_db for r in found if r.snr_db is not None]
    return Sounding(float(xo_hz), len(d.burst_reports), len(found), cfo, relative_error_ppm(cfo, lo_hz),
                    float(np.median(sco)) if sco else None, float(np.median(snr)) if snr else None)


@dataclass
class Calibration:
    """What a calibration did: the soundings in order and the xo_correction it ended at."""

    xo_start_hz: float
    xo_correction_hz: float
    converged: bool
    soundings: list[Sounding] = field(default_factory=list)

    @property
    def residual_ppm(self) -> float:
        """The error the last sounding measured (at xo_correction_hz)."""
        return self.soundings[-1].error_ppm

    @property
    def corrections(self) -> int:
        """xo_correction writes made."""
        return len(self.soundings) - 1


def calibrate(sender: Sender, device: XoTrim, lo_hz: float, session_base: int,
              on_sounding: Callable[[int, Sounding, float | None], None] | None = None,
              bursts: int = SOUNDING_BURSTS, tolerance_ppm: float = TOLERANCE_PPM,
              max_corrections: int = MAX_CORRECTIONS, deadline_s: float = 120.0,
              report_timeout_s: float = 10.0) -> Calibration:
    """Sound, correct, re-sound until |e| < tolerance_ppm or max_corrections writes; the device keeps the last value.

    on_sounding(iteration, sounding, new_xo_hz or None) is called after each sounding (1-based iteration).
    """
    xo = float(device.xo_correction_hz)
    result = Calibration(xo, xo, False)
    for iteration in range(1, max_corrections + 2):
        s = sound(sender, lo_hz, xo, session_base + iteration, bursts, deadline_s, report_timeout_s)
        result.soundings.append(s)
        result.converged = abs(s.error_ppm) < tolerance_ppm
        new = None if result.converged or iteration > max_corrections else corrected_xo_hz(xo, s.error_ppm)
        if new is not None and abs(new / XO_NOMINAL_HZ - 1.0) * 1e6 > XO_LIMIT_PPM:
            raise CalibrationError(f"the correction would set xo_correction {new:.0f} Hz, more than "
                                   f"{XO_LIMIT_PPM:g} ppm from 40 MHz: is the edge on the same LO ({lo_hz:g} Hz)?")
        if on_sounding is not None:
            on_sounding(iteration, s, new)
        if new is None:
            break
        device.xo_correction_hz = new
        xo = result.xo_correction_hz = float(device.xo_correction_hz)  # as the driver took it (an integer in Hz)
    return result


def local_edge_config(cfg_dump: dict, host_config: Path) -> Path:
    """The config file a local edge process reads: the host's, without its radio.pluto.xo_correction_hz.

    That value trims the host's own device; the local edge's device is another one (an emulated pair, or the
    one cabled Pluto whose TX and RX share a crystal), and trimming both by the same amount changes nothing.
    """
    import yaml

    pluto = cfg_dump.get("radio", {}).get("pluto", {})
    if pluto.get("xo_correction_hz") is None:
        return host_config
    edge = {**cfg_dump, "radio": {**cfg_dump["radio"], "pluto": {**pluto, "xo_correction_hz": None}}}
    path = host_config.with_name("edge_config.yaml")
    path.write_text(yaml.safe_dump(edge, sort_keys=False))
    return path
