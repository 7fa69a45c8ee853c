"""Crystal errors of an emulated pair of radios: seeded draws, the relative error a link sees, the XO correction.

One crystal drives both the LO and the sample clock of an AD9361, so two devices whose crystals differ by e
ppm (transmitter minus receiver) see a carrier offset of e * 1e-6 * lo_hz and a sample clock offset of e ppm
(`radio/channel.py` for the sign convention).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from radio.config import ChannelConfig

EMULATED_PPM_SPAN = 25.0
"""Emulated crystals draw their error from U(-EMULATED_PPM_SPAN, EMULATED_PPM_SPAN) ppm."""
XO_NOMINAL_HZ = 40_000_000
"""The AD9361 reference clock of a Pluto; its `xo_correction` attribute is the frequency the driver assumes."""
_ROLE_TAGS = {"host": 0x4857, "edge": 0x4547}  # stream keys of the two draws ('HW', 'EG')


def emulated_ppm(seed: int, role: str) -> float:
    """Crystal error (ppm) of the emulated device of `role` ('host' or 'edge'), drawn U(-25, 25) from seed."""
    if role not in _ROLE_TAGS:
        raise ValueError(f"role must be 'host' or 'edge', got {role!r}")
    rng = np.random.default_rng([int(seed), _ROLE_TAGS[role]])
    return float(rng.uniform(-EMULATED_PPM_SPAN, EMULATED_PPM_SPAN))


def emulated_ppm_pair(seed: int) -> tuple[float, float]:
    """(host_ppm, edge_ppm): the two emulated devices' crystal errors, drawn independently from seed."""
    return emulated_ppm(seed, "host"), emulated_ppm(seed, "edge")


def pair_ppm(configured_ppm: float | None, seed: int) -> tuple[float, float]:
    """(host_ppm, edge_ppm) for radio.pluto.emulated_ppm: a number is the host's error against an exact edge,
    None draws both from seed."""
    if configured_ppm is None:
        return emulated_ppm_pair(seed)
    return float(configured_ppm), 0.0


def xo_ppm_shift(xo_correction_hz: float) -> float:
    """How much an `xo_correction` lowers its device's effective crystal error, in ppm: (xo / 40 MHz - 1) 1e6.

    The driver derives LO and sample clock from the reference frequency it is told; telling it the crystal's true
    frequency (40 MHz x (1 + ppm 1e-6)) cancels the error.
    """
    return (float(xo_correction_hz) / XO_NOMINAL_HZ - 1.0) * 1e6


def with_clock_offset(channel_cfg: ChannelConfig, relative_ppm: float, lo_hz: float) -> ChannelConfig:
    """The channel section plus a relative crystal error (transmitter minus receiver, ppm) as CFO and SCO."""
    if relative_ppm == 0.0:
        return channel_cfg
    return channel_cfg.model_copy(update={
        "cfo_hz": channel_cfg.cfo_hz + relative_ppm * 1e-6 * lo_hz,
        "sco_ppm": channel_cfg.sco_ppm + relative_ppm,
    })
