"""The AD9361/AD9363 driver's ranges as a Pluto reports them: the config refuses what the device would refuse.

Numbers from the Linux ad9361 driver's `*_available` attributes on a stock Pluto (AD9363): LO 325 MHz to
3.8 GHz, sample rate 521 kHz (pyadi-iio's floor) to 61.44 MHz, RF bandwidth 200 kHz to 56 MHz on RX and to
40 MHz on TX, TX attenuation 0 to 89.75 dB in 0.25 dB steps, manual RX gain by LO band (the full gain table).
"""

from __future__ import annotations

LO_RANGE_HZ = (325_000_000, 3_800_000_000)
SAMPLE_RATE_RANGE_HZ = (521e3, 61.44e6)
RX_RF_BANDWIDTH_RANGE_HZ = (200_000, 56_000_000)
TX_RF_BANDWIDTH_RANGE_HZ = (200_000, 40_000_000)
TX_ATTENUATION_RANGE_DB = (0.0, 89.75)
TX_ATTENUATION_STEP_DB = 0.25


def rx_gain_range_db(lo_hz: float) -> tuple[int, int]:
    """Manual RX gain limits (dB) of the AD9361 full gain table for the LO band."""
    if lo_hz < 1_300_000_000:
        return (-1, 73)
    if lo_hz < 4_000_000_000:
        return (-3, 71)
    return (-10, 62)


def on_attenuation_step(attenuation_db: float) -> bool:
    """True when attenuation_db is a whole number of 0.25 dB steps (what the driver sets without rounding)."""
    steps = attenuation_db / TX_ATTENUATION_STEP_DB
    return abs(steps - round(steps)) < 1e-9
