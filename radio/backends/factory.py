"""Build the configured radio backend from the typed testbed.yaml sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radio.backends.base import RadioBackend
from radio.backends.pluto import CabledPlutoRelay, PlutoBackend, PlutoSettings
from radio.backends.pluto_emulator import emulated_pluto_backend
from radio.backends.sigmf_io import RecordedFrame, SigmfRecorder, SigmfReplayBackend
from radio.backends.sim import SimBackend
from radio.backends.zmq_iq import MAX_IDLE_SAMPLES, CableCurve, ZmqRxBackend, ZmqTxBackend
from radio.channel import Channel, ScheduledChannel
from radio.errors import BackendError
from radio.oscillator import pair_ppm, with_clock_offset

if TYPE_CHECKING:
    from radio.config import ChannelConfig, RadioConfig


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
    role: str = "loopback",
    curve: CableCurve | None = None,
) -> RadioBackend:
    """The backend `radio_cfg.backend` names: 'sim', 'zmq', 'pluto' (a real device with a URI, else emulated), 'replay'.

    reference_power is the nominal mean power of a transmitted burst in full scale; the channel
    model's SNR is defined against it. A real Pluto ignores the channel section: the air is the channel.
    role says which end this process is: 'tx' (the host), 'rx' (the edge) or 'loopback' (both ends
    here, as `airlora link` does). zmq: 'tx' gives a ZmqTxBackend, otherwise a ZmqRxBackend that
    applies the channel. pluto: the device at pluto_uri (or radio.pluto.uri; a 'tx'-only one is not
    streamed); without a URI an EmulatedPluto: 'loopback' with its TX cabled to its RX through the
    channel, 'tx' sending its DAC output over the radio.zmq cable (the emulated air), 'rx' receiving
    from it in real time and applying the channel, gains and ADC; 'rx' and 'loopback' add the emulated pair's
    relative crystal error (radio.pluto.emulated_ppm) to the channel's CFO and SCO. With radio.pluto.one_device
    and a URI (one Pluto, TX cabled to RX, opened by the edge): 'tx' gives a ZmqTxBackend to the edge and 'rx' a
    CabledPlutoRelay that plays the cable's bursts through the device and returns its received stream.
    With radio.record_sigmf set, the received stream is recorded (every backend but a 'tx' end of zmq or pluto).
    curve: CurveZMQ keys of this end of the radio.zmq cable (the edge's receiver is the CURVE server); None
    leaves the cable in the clear. Ends that use no cable ignore it.
    """
    if role not in ("tx", "rx", "loopback"):
        raise BackendError(f"make_backend role must be 'tx', 'rx' or 'loopback', got {role!r}")
    backend = _build(radio_cfg, channel_cfg, reference_power, pluto_uri, role, curve)
    if radio_cfg.record_sigmf and not (radio_cfg.backend in ("zmq", "pluto") and role == "tx"):
        frame = RecordedFrame.from_settings(radio_cfg.frame, radio_cfg.rolloff, radio_cfg.samples_per_symbol,
                                            radio_cfg.burst_airtime_s, radio_cfg.interleave_symbols)
        backend = SigmfRecorder(backend, radio_cfg.record_sigmf, frame=frame,
                                description=f"{radio_cfg.backend} backend, channel {channel_cfg.model}")
    return backend


def _zmq_tx(radio_cfg: RadioConfig, curve: CableCurve | None) -> ZmqTxBackend:
    z, fs = radio_cfg.zmq, radio_cfg.sample_rate_hz
    bind = z.bind_side == "tx"
    return ZmqTxBackend((z.bind_endpoint or z.endpoint) if bind else z.endpoint, fs, bind=bind,
                        pause_after_tx=z.pause_after_tx, hwm_messages=z.hwm_messages,
                        send_timeout_s=z.send_timeout_s, curve=curve)


def _zmq_rx(radio_cfg: RadioConfig, channel: Channel | ScheduledChannel | None, realtime_idle: bool,
            curve: CableCurve | None, whole_bursts: bool = False) -> ZmqRxBackend:
    """The cable's receiving end; whole_bursts (the one-device relay, which must play each burst whole) takes
    bursts in however long they are instead of stopping at radio.zmq.intake_window_s."""
    z, fs = radio_cfg.zmq, radio_cfg.sample_rate_hz
    bind = z.bind_side == "rx"
    window = MAX_IDLE_SAMPLES if whole_bursts else max(1, int(z.intake_window_s * fs))
    return ZmqRxBackend((z.bind_endpoint or z.endpoint) if bind else z.endpoint, fs, channel, bind=bind,
                        timeout_s=z.timeout_s, hwm_messages=z.hwm_messages, realtime_idle=realtime_idle,
                        max_gap_samples=max(1, int(z.max_gap_s * fs)), window_samples=window, curve=curve)


def _pluto(radio_cfg: RadioConfig, channel_cfg: ChannelConfig, reference_power: float, pluto_uri: str | None,
           role: str, curve: CableCurve | None) -> RadioBackend:
    p, fs = radio_cfg.pluto, radio_cfg.sample_rate_hz
    settings = PlutoSettings(sample_rate_hz=fs, lo_hz=p.lo_hz, tx_attenuation_db=p.tx_attenuation_db,
                             rx_gain_mode=p.rx_gain_mode, rx_gain_db=p.rx_gain_db, rf_bandwidth_hz=p.rf_bandwidth_hz,
                             rx_buffer_size=p.rx_buffer_size,
                             tx_buffer_samples=p.tx_buffer_samples, xo_correction_hz=p.xo_correction_hz)
    uri = pluto_uri or p.uri
    if uri and p.one_device and role == "tx":  # the edge owns the one device: send it IQ over the cable
        return _zmq_tx(radio_cfg, curve)
    if uri:
        device = PlutoBackend(uri, settings, rx_backlog_s=p.rx_backlog_s, stream_rx=role != "tx")
        if p.one_device and role == "rx":
            return CabledPlutoRelay(device, _zmq_rx(radio_cfg, None, realtime_idle=False, curve=curve,
                                                    whole_bursts=True))
        return device
    host_ppm, edge_ppm = pair_ppm(p.emulated_ppm, channel_cfg.seed)
    if role == "tx":  # the host's emulated device: its DAC output goes over the air (the zmq cable)
        return emulated_pluto_backend(None, settings, air_tx=_zmq_tx(radio_cfg, curve), seed=channel_cfg.seed,
                                      crystal_ppm=host_ppm)
    # the edge's channel carries the pair's relative crystal error (LO and sample clock from one crystal)
    channel_cfg = with_clock_offset(channel_cfg, host_ppm - edge_ppm, p.lo_hz)
    channel = make_channel(channel_cfg, fs, radio_cfg.samples_per_symbol, reference_power)
    if role == "rx":  # the edge's emulated device: the air's stream, in real time, through the channel
        return emulated_pluto_backend(channel, settings,
                                      air_rx=_zmq_rx(radio_cfg, None, realtime_idle=True, curve=curve),
                                      seed=channel_cfg.seed, crystal_ppm=edge_ppm)
    return emulated_pluto_backend(channel, settings, seed=channel_cfg.seed, crystal_ppm=edge_ppm)


def _build(
    radio_cfg: RadioConfig, channel_cfg: ChannelConfig, reference_power: float, pluto_uri: str | None, role: str,
    curve: CableCurve | None,
) -> RadioBackend:
    kind, fs = radio_cfg.backend, radio_cfg.sample_rate_hz
    if kind == "replay":
        if not radio_cfg.replay_sigmf:
            raise BackendError("backend replay needs radio.replay_sigmf")
        return SigmfReplayBackend(radio_cfg.replay_sigmf, sample_rate_hz=fs)
    if kind == "pluto":
        return _pluto(radio_cfg, channel_cfg, reference_power, pluto_uri, role, curve)
    if kind == "zmq" and role == "tx":
        return _zmq_tx(radio_cfg, curve)
    channel = make_channel(channel_cfg, fs, radio_cfg.samples_per_symbol, reference_power)
    if kind == "zmq":
        return _zmq_rx(radio_cfg, channel, radio_cfg.zmq.realtime_idle, curve)
    if kind == "sim":
        return SimBackend(channel, fs, seed=channel_cfg.seed)
    raise BackendError(f"unknown radio backend {kind!r}; use sim, zmq, pluto or replay")
