"""The `fleet:` section: several edges served by one broadcast (fountain-coded), and how the host serves them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from radio.config import ChannelConfig, PlutoConfig, check_zmq_endpoint
from testbed.sections.base import Section

MAX_EDGES = 64
SnrDb = Annotated[float, Field(ge=-30.0, le=60.0)]


class FleetEdge(Section):
    """One edge of the fleet: its name, where its control port and its end of the IQ cable are, its channel."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="the edge's name (node id, results, its adapter folder suffix)")
    control_endpoint: str = Field(description="the edge's control port as the host connects to it")
    iq_endpoint: str | None = Field(
        None, description="backend zmq: the edge's end of the IQ cable (it binds; the host connects)")
    pluto_uri: str | None = Field(None, description="backend pluto: the libiio URI of the edge's own receiver")
    channel: ChannelConfig | None = Field(
        None, description="emulated channels: the keys given here replace channel:'s for this edge (snr_db, model, "
                          "cfo_hz, snr_schedule, seed, ...)")

    @field_validator("control_endpoint", "iq_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return value if value is None else check_zmq_endpoint(value)

    @field_validator("pluto_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return PlutoConfig(uri=value).uri


class FleetConfig(Section):
    """Several edges at once: one transmission, a RaptorQ fountain code, the MCS picked from the fleet's SNRs."""

    edges: list[FleetEdge] = Field(
        default_factory=list, max_length=MAX_EDGES,
        description="the fleet (names unique); empty: the one edge of control: and radio: (today's unicast path)")
    local_snr_db: list[SnrDb] = Field(
        [20.0, 14.0, 8.0, 2.0], min_length=1, max_length=MAX_EDGES,
        description="`airlora run --edges N`: SNR (-30..60 dB) of each local edge's emulated channel (cycled)")
    local_pluto_uris: list[str] = Field(
        default_factory=list, max_length=MAX_EDGES,
        description="radio.backend pluto, local edges (`--edges N`, `airlora fed`): the libiio URI of each local "
                    "edge's own Pluto, in order (the host's is radio.pluto.uri); empty: the edges' Plutos are emulated")
    mcs_rule: Literal["worst", "percentile"] = Field(
        "worst", description="MCS from the pending edges' measured SNRs: the worst one, or a percentile (the "
                             "edges below it finish in a top-up at their own MCS once the others are done)")
    percentile: float = Field(25.0, ge=0.0, le=100.0, description="mcs_rule percentile: the SNR percentile used")
    max_burst_symbols: int = Field(256, ge=1, le=4096, description="most fountain symbols in one burst")
    min_burst_symbols: int = Field(1, ge=1, le=4096, description="fewest fountain symbols in one burst")
    lag_timeout_s: float = Field(
        2.0, gt=0.0, le=60.0, description="zmq: how long a broadcast waits for an edge whose cable is full before "
                                          "it drops that edge's samples (a radio does not wait)")
    report_timeout_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="wait for the edges' progress after a burst (plus its airtime)")
    rejoin_wait_s: float = Field(
        30.0, ge=0.0, le=86400.0, description="once every reachable edge is done, how long to wait for a lost edge "
                                              "to come back")
    evaluate: bool = Field(True, description="edges evaluate the installed adapter (false: verify and install only)")

    @field_validator("local_pluto_uris")
    @classmethod
    def _uris(cls, value: list[str]) -> list[str]:
        for uri in value:
            PlutoConfig._uri(uri)  # the same libiio URI check as radio.pluto.uri
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "FleetConfig":
        names = [e.name for e in self.edges]
        if len(set(names)) != len(names):
            raise ValueError(f"fleet.edges: names must be unique, got {names}")
        if self.min_burst_symbols > self.max_burst_symbols:
            raise ValueError("fleet.min_burst_symbols must not exceed fleet.max_burst_symbols")
        return self
