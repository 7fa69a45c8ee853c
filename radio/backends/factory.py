"""Build the configured radio backend from the typed testbed.yaml sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radio.backends.base import RadioBackend
from radio.backends.pluto import PlutoBackend
from radio.backends.sigmf_io import SigmfRecorder, SigmfReplayBackend
from radio.backends.sim import SimBackend
from radio.backends.zmq_iq import ScheduledChannel, ZmqRxBackend, ZmqTxBackend
from radio.channel import Channel
from radio.errors import BackendError

if TYPE_CHECKING:
    from testbed.sections.radio import ChannelConfig, RadioConfig


def make_channel(
    channel_cfg: ChannelConfig, sample_rate_hz: float, samples_per_symbol: int, reference_power: float
) -> Channel | ScheduledChannel:
    """The channel model of the `channel:` section, wrapped in its SNR schedule when it has one."""
    channel = Channel.from_config(channel_cfg, sample_rate_hz, samples_per_symbol, reference_power)
    if not channel_cfg.snr_schedule:
        return channel
    return ScheduledChannel.from_seconds(channel, [(s.at_s, s.snr_db) for s in channel_cfg.snr_schedule])


def make_backend(
    radio_cfg: RadioConfig,
    channel_cfg: ChannelConfig,
    reference_power: float,
    pluto_uri: str | None = None,
    role: str = "tx",
) -> RadioBackend:
    """The backend `radio_cfg.backend` names: 'sim', 'zmq', 'pluto' (a real device with a URI, else emulated), 'replay'.

    reference_power is the nominal mean power of a transmitted burst in full scale; the channel
    model's SNR is defined against it. A real Pluto ignores the channel section: the air is the channel.
    role says which end of a one-way backend this process is: 'tx' (the host) or 'rx' (the edge).
    Only zmq uses it: 'tx' gives a ZmqTxBackend, 'rx' a ZmqRxBackend that applies the channel.
    With radio.record_sigmf set, the received stream is recorded (every backend but a zmq 'tx' end).
    """
    if role not in ("tx", "rx"):
        raise BackendError(f"make_backend role must be 'tx' or 'rx', got {role!r}")
    backend = _build(radio_cfg, channel_cfg, reference_power, pluto_uri, role)
    if radio_cfg.record_sigmf and not (radio_cfg.backend == "zmq" and role == "tx"):
        backend = SigmfRecorder(backend, radio_cfg.record_sigmf,
                                description=f"{radio_cfg.backend} backend, channel {channel_cfg.model}")
    return backend


def _build(
    radio_cfg: RadioConfig, channel_cfg: ChannelConfig, reference_power: float, pluto_uri: str | None, role: str
) -> RadioBackend:
    kind, fs = radio_cfg.backend, radio_cfg.sample_rate_hz
    if kind == "replay":
        if not radio_cfg.replay_sigmf:
            raise BackendError("backend replay needs radio.replay_sigmf")
        return SigmfReplayBackend(radio_cfg.replay_sigmf, sample_rate_hz=fs)
    if kind == "pluto" and pluto_uri:
        return PlutoBackend(pluto_uri, sample_rate_hz=fs)
    if kind == "zmq" and role == "tx":
        z = radio_cfg.zmq
        bind = z.bind_side == "tx"
        return ZmqTxBackend((z.bind_endpoint or z.endpoint) if bind else z.endpoint, fs, bind=bind,
                            pause_after_tx=z.pause_after_tx, hwm_messages=z.hwm_messages,
                            send_timeout_s=z.send_timeout_s)
    channel = make_channel(channel_cfg, fs, radio_cfg.samples_per_symbol, reference_power)
    if kind == "zmq":
        z = radio_cfg.zmq
        bind = z.bind_side == "rx"
        return ZmqRxBackend((z.bind_endpoint or z.endpoint) if bind else z.endpoint, fs, channel, bind=bind,
                            timeout_s=z.timeout_s, hwm_messages=z.hwm_messages,
                            realtime_idle=z.realtime_idle)
    if kind == "sim":
        return SimBackend(channel, fs, seed=channel_cfg.seed)
    if kind == "pluto":
        return PlutoBackend.emulated(channel, sample_rate_hz=fs, seed=channel_cfg.seed)
    raise BackendError(f"unknown radio backend {kind!r}; use sim, zmq, pluto or replay")
