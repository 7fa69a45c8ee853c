"""Build the configured radio backend from the typed testbed.yaml sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radio.backends.base import RadioBackend
from radio.backends.broadcast import BroadcastTx
from radio.backends.pluto import CabledPlutoRelay, PlutoBackend, PlutoSettings
from radio.backends.pluto_emulator import emulated_pluto_backend
from radio.backends.sigmf_io import RecordedFrame, SigmfRecorder, SigmfReplayBackend
from radio.backends.sim import SimBackend
from radio.backends.zmq_iq import MAX_IDLE_SAMPLES, CableCurve, ZmqRxBackend, ZmqTxBackend
from radio.channel import Channel, ScheduledChannel
from radio.errors import BackendError
from radio.oscillator import emulated_ppm, pair_ppm, with_clock_offset

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
    settings = pluto_settings(radio_cfg)
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


# --- the fleet's radios: one host device that broadcasts and hears every uplink, one device per edge -------------

UPLINK_WINDOW_S = 2.0
"""The host's uplink receiver takes this much of the cable ahead of its decoder (seconds of stream)."""


def pluto_settings(radio_cfg: RadioConfig) -> PlutoSettings:
    """The device settings of radio.pluto at radio.sample_rate_hz."""
    p = radio_cfg.pluto
    return PlutoSettings(sample_rate_hz=radio_cfg.sample_rate_hz, lo_hz=p.lo_hz, tx_attenuation_db=p.tx_attenuation_db,
                         rx_gain_mode=p.rx_gain_mode, rx_gain_db=p.rx_gain_db, rf_bandwidth_hz=p.rf_bandwidth_hz,
                         rx_buffer_size=p.rx_buffer_size, tx_buffer_samples=p.tx_buffer_samples,
                         xo_correction_hz=p.xo_correction_hz)


def fleet_crystals_ppm(radio_cfg: RadioConfig, host_seed: int, edge_seeds: list[int]) -> tuple[float, list[float]]:
    """Emulated fleet: (the host device's crystal error, each edge device's) in ppm.

    radio.pluto.emulated_ppm a number: the host's error against exact edges (as for a pair); null: the host's drawn
    from host_seed and each edge's from its own channel seed, as `pair_ppm` draws a pair (an edge whose seed is the
    host's has the unicast pair's crystals)."""
    if radio_cfg.pluto.emulated_ppm is not None:
        return float(radio_cfg.pluto.emulated_ppm), [0.0] * len(edge_seeds)
    return emulated_ppm(host_seed, "host"), [emulated_ppm(s, "edge") for s in edge_seeds]


def make_broadcast_backend(radio_cfg: RadioConfig, endpoints: list[str], *, curves: list[CableCurve | None],
                           lag_timeout_s: float, pluto_uri: str | None = None, host_ppm: float = 0.0,
                           seed: int = 0, stream_rx: bool = False) -> RadioBackend:
    """The one transmitter a fleet hears.

    zmq: a BroadcastTx over the edges' IQ cables (endpoints). pluto with a URI (pluto_uri or radio.pluto.uri): that
    device (stream_rx: it also receives, continuously: the uplinks of `airlora fed`). pluto without one: an emulated
    device with crystal error host_ppm whose DAC output goes over a BroadcastTx (the emulated air to every edge; each
    edge's own emulated device applies its channel). radio.pluto.one_device is refused (the edge owns that device).
    """
    p = radio_cfg.pluto

    def air() -> BroadcastTx:
        return BroadcastTx(endpoints, radio_cfg.sample_rate_hz, curves=curves, lag_timeout_s=lag_timeout_s,
                           hwm_messages=radio_cfg.zmq.hwm_messages)

    if radio_cfg.backend == "zmq":
        return air()
    if radio_cfg.backend != "pluto":
        raise BackendError(f"a fleet is served over radio.backend zmq or pluto, not {radio_cfg.backend!r}")
    if p.one_device:
        raise BackendError("radio.pluto.one_device: one Pluto owned by one edge cannot serve a fleet")
    uri = pluto_uri or p.uri
    if uri:
        return PlutoBackend(uri, pluto_settings(radio_cfg), rx_backlog_s=p.rx_backlog_s, stream_rx=stream_rx)
    return emulated_pluto_backend(None, pluto_settings(radio_cfg), air_tx=air(), seed=seed, crystal_ppm=host_ppm)


def uplink_cable_tx(endpoint: str, sample_rate_hz: float, hwm_messages: int, send_timeout_s: float) -> ZmqTxBackend:
    """The edge's end of its uplink cable: connects to the host's receiver at endpoint."""
    return ZmqTxBackend(endpoint, sample_rate_hz, bind=False, hwm_messages=hwm_messages,
                        send_timeout_s=send_timeout_s)


def uplink_cable_rx(endpoint: str, sample_rate_hz: float, channel: Channel | ScheduledChannel | None,
                    hwm_messages: int, realtime_idle: bool = False) -> ZmqRxBackend:
    """The host's end of an edge's uplink cable: binds endpoint, applies channel (None: the emulated air)."""
    return ZmqRxBackend(endpoint, sample_rate_hz, channel, bind=True, hwm_messages=hwm_messages,
                        window_samples=max(1, int(UPLINK_WINDOW_S * sample_rate_hz)), realtime_idle=realtime_idle)


def make_uplink_backend(
    radio_cfg: RadioConfig, channel_cfg: ChannelConfig, reference_power: float, role: str, endpoint: str, *,
    crystals_ppm: tuple[float, float] | None = None, device: RadioBackend | None = None,
) -> RadioBackend:
    """One end of an edge's uplink (`airlora fed`: the edge transmits its adapter, the host receives it).

    role 'tx' is the edge's end, 'rx' the host's. zmq: the uplink cable (the host binds endpoint and applies
    channel_cfg; the edge connects). pluto with a URI (radio.pluto.uri): the node's own device, `device` when it is
    open already (the edge's receiver, the host's broadcaster), else opened here. pluto without one: an emulated
    device on an emulated air, the cable at endpoint: the edge's sends its DAC output over it, the host's receives
    it in real time through channel_cfg plus the pair's relative crystal error (edge minus host).
    crystals_ppm: (host_ppm, edge_ppm) of the emulated pair; None draws them as `pair_ppm` does for this node's
    config (radio.pluto.emulated_ppm, channel_cfg.seed).
    """
    if role not in ("tx", "rx"):
        raise BackendError(f"make_uplink_backend role must be 'tx' or 'rx', got {role!r}")
    z, p, fs = radio_cfg.zmq, radio_cfg.pluto, radio_cfg.sample_rate_hz
    if radio_cfg.backend not in ("zmq", "pluto"):
        raise BackendError(f"the uplink runs over radio.backend zmq or pluto, not {radio_cfg.backend!r}")
    if radio_cfg.backend == "pluto" and p.one_device:
        raise BackendError("radio.pluto.one_device: the uplink needs a Pluto on each node")
    if radio_cfg.backend == "pluto" and p.uri:
        if device is not None:
            return device
        return PlutoBackend(p.uri, pluto_settings(radio_cfg), rx_backlog_s=p.rx_backlog_s, stream_rx=role == "rx")
    if radio_cfg.backend == "zmq":
        if role == "tx":
            return uplink_cable_tx(endpoint, fs, z.hwm_messages, z.send_timeout_s)
        return uplink_cable_rx(endpoint, fs, make_channel(channel_cfg, fs, radio_cfg.samples_per_symbol,
                                                          reference_power), z.hwm_messages)
    host_ppm, edge_ppm = crystals_ppm if crystals_ppm is not None else pair_ppm(p.emulated_ppm, channel_cfg.seed)
    if role == "tx":
        return emulated_pluto_backend(None, pluto_settings(radio_cfg), seed=channel_cfg.seed, crystal_ppm=edge_ppm,
                                      air_tx=uplink_cable_tx(endpoint, fs, z.hwm_messages, z.send_timeout_s))
    channel_cfg = with_clock_offset(channel_cfg, edge_ppm - host_ppm, p.lo_hz)
    channel = make_channel(channel_cfg, fs, radio_cfg.samples_per_symbol, reference_power)
    return emulated_pluto_backend(channel, pluto_settings(radio_cfg), seed=channel_cfg.seed, crystal_ppm=host_ppm,
                                  air_rx=uplink_cable_rx(endpoint, fs, None, z.hwm_messages, realtime_idle=True))
