"""Radio backends: how IQ samples move (in-process simulation, ZeroMQ, a Pluto through pyadi-iio)."""

from radio.backends.base import CableStream, RadioBackend
from radio.backends.factory import make_backend
from radio.backends.pluto import PlutoBackend, PlutoSettings
from radio.backends.pluto_emulator import EmulatedPluto, emulated_pluto_backend
from radio.backends.sim import SimBackend

__all__ = ["CableStream", "EmulatedPluto", "PlutoBackend", "PlutoSettings", "RadioBackend", "SimBackend",
           "emulated_pluto_backend", "make_backend"]
