"""Build the configured radio backend from the typed testbed.yaml sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radio.backends.base import RadioBackend
from radio.backends.pluto import PlutoBackend
from radio.backends.sim import SimBackend
from radio.channel import Channel
from radio.errors import BackendError

if TYPE_CHECKING:
    from testbed.sections.radio import ChannelConfig, RadioConfig


def make_backend(
    radio_cfg: RadioConfig,
    channel_cfg: ChannelConfig,
    reference_power: float,
    pluto_uri: str | None = None,
) -> RadioBackend:
    """The backend `radio_cfg.backend` names: 'sim', or 'pluto' (a real device with a URI, else emulated).

    reference_power is the nominal mean power of a transmitted burst in full scale; the channel
    model's SNR is defined against it. A real Pluto ignores the channel section: the air is the channel.
    """
    kind = radio_cfg.backend
    if kind == "zmq":
        raise BackendError("zmq backend not implemented yet")
    if kind == "pluto" and pluto_uri:
        return PlutoBackend(pluto_uri, sample_rate_hz=radio_cfg.sample_rate_hz)
    channel = Channel.from_config(
        channel_cfg, radio_cfg.sample_rate_hz, radio_cfg.samples_per_symbol, reference_power
    )
    if kind == "sim":
        return SimBackend(channel, radio_cfg.sample_rate_hz, seed=channel_cfg.seed)
    if kind == "pluto":
        return PlutoBackend.emulated(channel, sample_rate_hz=radio_cfg.sample_rate_hz, seed=channel_cfg.seed)
    raise BackendError(f"unknown radio backend {kind!r}; use sim, zmq or pluto")
