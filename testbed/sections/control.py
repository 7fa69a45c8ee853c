"""The `control:` section of testbed.yaml: the ZeroMQ control plane between host and edge."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from radio.config import check_zmq_endpoint
from testbed.sections.base import Section


class CurveConfig(Section):
    """CurveZMQ authentication and encryption of the control plane (off by default)."""

    enabled: bool = Field(False, description="encrypt and authenticate the control plane with CurveZMQ")
    keys_dir: str = Field("~/.config/airlora/keys", description="where `airlora keys` writes key pairs")
    server_secret_key: str | None = Field(
        None, description="edge: its secret key file (default <keys_dir>/edge.key_secret)")
    authorized_keys_dir: str | None = Field(
        None, description="edge: directory of host public keys (*.key) allowed in (default <keys_dir>/authorized)")
    server_public_key: str | None = Field(
        None, description="host: the edge's public key file (default <keys_dir>/edge.key)")
    client_secret_key: str | None = Field(
        None, description="host: its secret key file (default <keys_dir>/host.key_secret)")

    def _path(self, value: str | None, default: str) -> Path:
        return Path(value if value else Path(self.keys_dir) / default).expanduser()

    def server_secret_path(self) -> Path:
        """The edge's secret key file."""
        return self._path(self.server_secret_key, "edge.key_secret")

    def authorized_keys_path(self) -> Path:
        """The edge's directory of authorized host public keys."""
        return self._path(self.authorized_keys_dir, "authorized")

    def server_public_path(self) -> Path:
        """The edge's public key file, as the host reads it."""
        return self._path(self.server_public_key, "edge.key")

    def client_secret_path(self) -> Path:
        """The host's secret key file."""
        return self._path(self.client_secret_key, "host.key_secret")


class ControlConfig(Section):
    """Host <-> edge control messages over ZeroMQ: where, how often, how long to wait."""

    endpoint: str = Field("tcp://127.0.0.1:5555",
                          description="the edge's control port as the host connects to it")
    bind: str | None = Field(None, description="what the edge binds (default: endpoint), e.g. tcp://*:5555")
    heartbeat_s: float = Field(1.0, ge=0.02, le=60.0, description="interval between heartbeats")
    peer_timeout_s: float = Field(5.0, ge=0.1, le=600.0,
                                  description="a peer silent this long is reported lost")
    request_timeout_s: float = Field(10.0, ge=0.05, le=3600.0,
                                     description="how long the host waits for the edge to answer a request")
    max_message_bytes: int = Field(1 << 20, ge=4096, le=64 << 20,
                                   description="larger control messages are refused (and the sender dropped)")
    reconnect_s: float = Field(0.1, ge=0.01, le=60.0, description="first reconnection delay after a drop")
    reconnect_max_s: float = Field(2.0, ge=0.01, le=600.0, description="longest reconnection delay (backoff)")
    max_peers: int = Field(16, ge=1, le=4096, description="hosts the edge tracks at once; more are refused")
    curve: CurveConfig = CurveConfig()

    @field_validator("endpoint", "bind")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return value if value is None else check_zmq_endpoint(value)

    @field_validator("peer_timeout_s")
    @classmethod
    def _timeout_after_heartbeats(cls, value: float, info: ValidationInfo) -> float:
        heartbeat_s = info.data.get("heartbeat_s")
        if heartbeat_s is not None and value <= 2 * heartbeat_s:
            raise ValueError(f"must exceed twice heartbeat_s ({heartbeat_s}), or one late heartbeat drops the peer")
        return value

    @field_validator("reconnect_max_s")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        reconnect_s = info.data.get("reconnect_s")
        if reconnect_s is not None and value < reconnect_s:
            raise ValueError(f"must be >= reconnect_s ({reconnect_s})")
        return value

    @property
    def bind_endpoint(self) -> str:
        """What the edge binds: `bind`, or `endpoint` when bind is not set."""
        return self.bind or self.endpoint
