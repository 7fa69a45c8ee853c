"""Radio backends: how IQ samples move (in-process simulation, ZeroMQ, a Pluto through pyadi-iio)."""

from radio.backends.base import RadioBackend
from radio.backends.factory import make_backend
from radio.backends.pluto import PlutoBackend
from radio.backends.pluto_emulator import EmulatedPluto
from radio.backends.sim import SimBackend

__all__ = ["EmulatedPluto", "PlutoBackend", "RadioBackend", "SimBackend", "make_backend"]
