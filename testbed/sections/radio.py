"""The `radio:` and `channel:` sections of testbed.yaml."""

from typing import Literal

from pydantic import Field

from testbed.sections.base import Section


class RadioConfig(Section):
    """The air interface and which backend carries the IQ samples."""

    backend: Literal["sim", "zmq", "pluto"] = Field("sim", description="how IQ samples move")
    sample_rate_hz: float = Field(1.0e6, ge=65.0e3, le=61.44e6, description="baseband sample rate")
    samples_per_symbol: int = Field(4, ge=2, le=16, description="oversampling of the RRC pulse")
    rolloff: float = Field(0.25, ge=0.05, le=1.0, description="root-raised-cosine roll-off")
    mcs: str = Field("auto", description="'auto' (link adaptation from measured SNR) or an MCS name")
    target_per: float = Field(0.1, gt=0.0, lt=1.0, description="packet error rate the MCS rule aims for")
    packet_payload_bytes: int = Field(1024, ge=16, le=65000, description="payload bytes per packet")
    max_rounds: int = Field(30, ge=1, le=1000, description="retransmission rounds before giving up")


class ChannelConfig(Section):
    """The channel model applied between transmitter and receiver (sim and zmq backends)."""

    model: Literal["awgn", "rayleigh", "rician"] = "awgn"
    snr_db: float = Field(15.0, ge=-30.0, le=60.0, description="average in-band SNR (Es/N0)")
    rician_k_db: float = Field(6.0, ge=-20.0, le=40.0, description="Rician K factor")
    coherence_samples: int = Field(20000, ge=1, description="block-fading length in samples")
    cfo_hz: float = Field(0.0, description="carrier frequency offset")
    timing_offset_samples: float = Field(0.0, ge=0.0, description="extra delay, may be fractional")
    phase_noise_linewidth_hz: float = Field(0.0, ge=0.0, description="Wiener phase noise linewidth")
    dc_offset: float = Field(0.0, ge=0.0, le=0.5, description="DC offset magnitude (full scale 1)")
    seed: int = Field(1, ge=0, description="seed of the channel's random numbers")
