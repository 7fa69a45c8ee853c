"""The `radio:` and `channel:` sections of testbed.yaml (the radio owns its own schema; testbed/config.py composes it)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from radio.ad9361 import (LO_RANGE_HZ, TX_ATTENUATION_RANGE_DB, TX_RF_BANDWIDTH_RANGE_HZ, on_attenuation_step,
                          rx_gain_range_db)

ZMQ_SCHEMES = ("tcp://", "ipc://", "inproc://")
DEFAULT_INTERLEAVE_SYMBOLS = 125_000  # symbols a group spans (0.5 s at 250 ksym/s; 0: off): docs/design/link_v2.md 11b
MAX_INTERLEAVE_SYMBOLS = 1 << 20  # 4.2 s at 250 ksym/s: more than a burst (radio/interleave.py)
XO_CORRECTION_RANGE_HZ = (39_960_000, 40_040_000)
"""radio.pluto.xo_correction_hz: within 1000 ppm of the 40 MHz reference (a Pluto's crystal is within about 25 ppm)."""
MAX_ENDPOINT_CHARS = 256
MAX_IPC_PATH_BYTES = 107
"""Linux sun_path holds 108 bytes with the terminating NUL; ZeroMQ refuses a longer ipc:// path."""


class Section(BaseModel):
    """A radio config section: strict about unknown keys, validated on assignment, numbers finite (no NaN, no inf)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _tcp_address(address: str) -> None:
    """HOST:PORT of a tcp:// endpoint: HOST a name, an IPv4 address, [IPv6] or *; PORT 1..65535 or * (any)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or host == "[]":
        raise ValueError("a tcp endpoint needs HOST:PORT, e.g. tcp://127.0.0.1:5555")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError("an IPv6 host goes in brackets, e.g. tcp://[::1]:5555")
    if port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port[:12]!r} is not in 1..65535 (or * for any)")


def check_zmq_endpoint(value: str) -> str:
    """A ZeroMQ endpoint, parsed: tcp://HOST:PORT, ipc://PATH or inproc://NAME; ValueError naming what is wrong."""
    if len(value) > MAX_ENDPOINT_CHARS:
        raise ValueError(f"longer than {MAX_ENDPOINT_CHARS} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError("contains spaces or control characters")
    if not value.startswith(ZMQ_SCHEMES):
        raise ValueError("is not a ZeroMQ address: tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    scheme, rest = value.split("://", 1)
    if not rest:
        raise ValueError(f"{scheme}:// needs an address after it")
    if scheme == "tcp":
        _tcp_address(rest)
    elif scheme == "ipc" and len(rest.encode()) > MAX_IPC_PATH_BYTES:
        raise ValueError(f"an ipc path may have {MAX_IPC_PATH_BYTES} bytes at most")
    return value


class ZmqConfig(Section):
    """The ZeroMQ IQ cable (backend zmq): one side binds, the other connects; the host transmits, the edge receives."""

    endpoint: str = Field("tcp://127.0.0.1:5600", description="address the connecting side dials")
    bind_endpoint: str | None = Field(
        None, description="address the binding side listens on, e.g. tcp://*:5600 (default: endpoint)"
    )
    bind_side: Literal["rx", "tx"] = Field("rx", description="which side binds: rx (the edge) or tx (the host)")
    timeout_s: float = Field(
        1.0, gt=0.0, le=600.0, description="receiver wait for samples from an active transmitter before idling"
    )
    send_timeout_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="transmitter wait on a full queue before tx() fails"
    )
    pause_after_tx: bool = Field(True, description="each tx() burst ends in open-ended silence (like sim)")
    realtime_idle: bool = Field(
        False, description="edge produces idle noise no faster than real time (saves CPU; stream time ~ wall time)"
    )
    hwm_messages: int = Field(16, ge=1, le=1024, description="high-water mark per side in messages of 32768 samples")
    max_gap_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="receiver: the longest silence one IQ message may declare (an idle, or "
                                              "a jump of its start index); a longer one is refused, not waited out")
    intake_window_s: float = Field(
        2.0, gt=0.0, le=60.0, description="receiver: samples held off the cable ahead of the decoder, in seconds of "
                                          "stream (2 s at 1 MS/s: 16 MiB); beyond, the cable pushes back")

    @field_validator("endpoint", "bind_endpoint")
    @classmethod
    def _transport(cls, value: str | None) -> str | None:
        return value if value is None else check_zmq_endpoint(value)


class PlutoConfig(Section):
    """This node's ADALM-PLUTO (backend pluto); uri null emulates one (across processes over radio.zmq)."""

    uri: str | None = Field(
        None, description="libiio URI of this node's Pluto, e.g. ip:192.168.2.1 or usb:1.5.5 (null: emulated)"
    )
    lo_hz: float = Field(915.0e6, ge=LO_RANGE_HZ[0], le=LO_RANGE_HZ[1],
                         description="carrier of TX and RX (stock AD9363 range)")
    tx_attenuation_db: float = Field(10.0, ge=TX_ATTENUATION_RANGE_DB[0], le=TX_ATTENUATION_RANGE_DB[1],
                                     description="TX attenuation in 0.25 dB steps")
    rx_gain_mode: Literal["manual", "slow_attack", "fast_attack", "hybrid"] = Field(
        "slow_attack", description="RX gain control; rx_gain_db applies in manual only"
    )
    rx_gain_db: float = Field(
        30.0, ge=-3.0, le=73.0, description="RX gain in manual mode: -1..73 dB below 1.3 GHz, -3..71 dB above"
    )
    rf_bandwidth_hz: float | None = Field(
        None, ge=TX_RF_BANDWIDTH_RANGE_HZ[0], le=TX_RF_BANDWIDTH_RANGE_HZ[1],
        description="analog filter bandwidth of both paths, so at most TX's 40 MHz (null: the sample rate)"
    )
    rx_buffer_size: int = Field(32768, ge=1024, le=1 << 22, description="samples per device RX buffer")
    tx_buffer_samples: int = Field(
        65536, ge=4096, le=1 << 22, description="samples per device TX buffer of a v2 burst (the last zero-padded)"
    )
    rx_backlog_s: float = Field(
        2.0, gt=0.0, le=60.0, description="real device: received samples held for a slow reader before the oldest drop"
    )
    one_device: bool = Field(
        False, description="one Pluto (TX cabled to RX) at uri, owned by the edge; the host sends it IQ over radio.zmq"
    )
    emulated_ppm: float | None = Field(
        None, ge=-100.0, le=100.0,
        description="emulated pair (uri null): crystal error of the host's device against the edge's, in ppm, "
                    "applied as CFO (ppm x lo_hz) and sample clock offset; null draws each device U(-25, 25) "
                    "from channel.seed",
    )
    xo_correction_hz: float | None = Field(
        None, ge=XO_CORRECTION_RANGE_HZ[0], le=XO_CORRECTION_RANGE_HZ[1],
        description="the AD9361 xo_correction set when this node's device opens: the frequency (Hz) of the "
                    "40 MHz reference the driver assumes, as `airlora xo-cal` measures it (null: leave the device's)",
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ip:", "usb:", "serial:", "local:")):
            raise ValueError("is not a libiio URI (ip:..., usb:..., serial:... or local:)")
        return value

    @field_validator("tx_attenuation_db")
    @classmethod
    def _attenuation_step(cls, value: float) -> float:
        if not on_attenuation_step(value):
            raise ValueError("must be a multiple of 0.25 dB (the AD9361's attenuation step)")
        return value

    @model_validator(mode="after")
    def _gain_in_lo_band(self) -> "PlutoConfig":
        low, high = rx_gain_range_db(self.lo_hz)
        if not low <= self.rx_gain_db <= high:
            raise ValueError(f"rx_gain_db {self.rx_gain_db:g} is outside {low}..{high} dB, the AD9361's "
                             f"manual gain range at lo_hz {self.lo_hz:g}")
        return self


def _mcs_names(family: str) -> list[str]:
    """MCS names of a family ('conv' for frame v1, 'ldpc' for v2), imported late (radio.mcs reads no config)."""
    from radio.mcs import family_table

    return [m.name for m in family_table(family)]


class RadioConfig(Section):
    """The air interface and which backend carries the IQ samples."""

    backend: Literal["sim", "zmq", "pluto", "replay"] = Field("sim", description="how IQ samples move")
    sample_rate_hz: float = Field(1.0e6, ge=65.0e3, le=61.44e6, description="baseband sample rate")
    samples_per_symbol: int = Field(4, ge=2, le=16, description="oversampling of the RRC pulse")
    rolloff: float = Field(0.15, ge=0.05, le=1.0, description="root-raised-cosine roll-off")
    mcs: str = Field("auto", description="'auto' (link adaptation from measured SNR) or an MCS name")
    target_per: float = Field(0.1, gt=0.0, lt=1.0, description="packet error rate the MCS rule aims for")
    packet_payload_bytes: int = Field(1024, ge=16, le=65000, description="payload bytes per packet")
    max_rounds: int = Field(30, ge=1, le=1000, description="retransmission rounds before giving up")
    frame: Literal["v1", "v2"] = Field(
        "v2", description="v2: LDPC bursts (radio.mcs then 'auto' or an ldpc-* name); v1: K=7 packets (old edges)"
    )
    burst_airtime_s: float = Field(1.0, ge=0.05, le=2.0, description="v2: longest burst on air, in seconds")
    window_bursts: int = Field(2, ge=1, le=8, description="v2: bursts that may await the edge's report at once")
    interleave_symbols: int = Field(
        DEFAULT_INTERLEAVE_SYMBOLS, ge=0, le=MAX_INTERLEAVE_SYMBOLS,
        description="v2: symbols an interleaving group of codewords spans (0: off; both ends must agree)",
    )
    zmq: ZmqConfig = Field(
        default_factory=ZmqConfig, description="the ZeroMQ IQ cable (backend zmq; backend pluto emulated: the air)"
    )
    pluto: PlutoConfig = Field(default_factory=PlutoConfig, description="this node's Pluto (backend pluto)")
    record_sigmf: str | None = Field(
        None, description="record the received stream to <path>.sigmf-data/.sigmf-meta (null: off)"
    )
    replay_sigmf: str | None = Field(None, description="SigMF recording the replay backend plays as received IQ")

    @model_validator(mode="after")
    def _replay_needs_a_file(self) -> "RadioConfig":
        if self.backend == "replay" and not self.replay_sigmf:
            raise ValueError("backend replay needs radio.replay_sigmf (base path of a SigMF recording)")
        ldpc = self.mcs in _mcs_names("ldpc")
        if self.mcs != "auto" and ldpc != (self.frame == "v2"):  # v1 leaves unknown names to the link, as before
            family = "ldpc" if self.frame == "v2" else "conv"
            raise ValueError(f"radio.mcs {self.mcs[:40]!r} is not a frame {self.frame} MCS: use 'auto' or one of "
                             f"{', '.join(_mcs_names(family))}")
        if self.backend == "pluto" and self.sample_rate_hz < 521.0e3:
            raise ValueError(f"backend pluto needs radio.sample_rate_hz >= 521e3 (a Pluto's minimum), "
                             f"got {self.sample_rate_hz:g}")
        return self


class SnrStep(Section):
    """One step of an SNR schedule: from at_s seconds of received-stream time on, the SNR is snr_db."""

    at_s: float = Field(ge=0.0, le=1.0e6, description="received-stream time of the step in s (x sample rate = index)")
    snr_db: float = Field(ge=-30.0, le=60.0, description="SNR (Es/N0) from this step on")


class ChannelConfig(Section):
    """The channel model applied between transmitter and receiver (sim and zmq backends)."""

    model: Literal["awgn", "rayleigh", "rician"] = "awgn"
    snr_db: float = Field(15.0, ge=-30.0, le=60.0, description="average in-band SNR (Es/N0)")
    rician_k_db: float = Field(6.0, ge=-20.0, le=40.0, description="Rician K factor")
    coherence_samples: int = Field(20000, ge=1, le=10**9, description="block-fading length in samples")
    cfo_hz: float = Field(0.0, ge=-30.72e6, le=30.72e6,
                          description="carrier frequency offset (at most half the largest sample rate, 61.44e6)")
    timing_offset_samples: float = Field(
        0.0, ge=0.0, le=1.0e6,
        description="extra delay, may be fractional; at most 1e6 samples (the delay line is allocated up front)")
    phase_noise_linewidth_hz: float = Field(0.0, ge=0.0, le=1.0e6, description="Wiener phase noise linewidth")
    dc_offset: float = Field(0.0, ge=0.0, le=0.5, description="DC offset magnitude (full scale 1)")
    sco_ppm: float = Field(
        0.0, ge=-200.0, le=200.0,
        description="sample clock offset in ppm; > 0: the transmitter's clock is fast (a tone at f arrives at f (1 + e))",
    )
    sco_drift_ppm_per_s: float = Field(0.0, ge=-10.0, le=10.0, description="change of sco_ppm per second of stream")
    seed: int = Field(1, ge=0, description="seed of the channel's random numbers")
    snr_schedule: list[SnrStep] = Field(
        default_factory=list,
        max_length=1000,
        description="SNR steps over received-stream time (snr_db holds until the first step); at_s increasing",
    )

    @field_validator("snr_schedule")
    @classmethod
    def _increasing(cls, steps: list[SnrStep]) -> list[SnrStep]:
        times = [s.at_s for s in steps]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"snr_schedule at_s must be strictly increasing, got {times}")
        return steps
