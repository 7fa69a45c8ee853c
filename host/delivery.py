"""What a delivery did, measured, and how it fails: shared by the v1 sender and the v2 one."""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.errors import AirLoraError
from testbed.messages import ApplyResult, BurstReport, SnrReport


class DeliveryError(AirLoraError):
    """A payload could not be delivered (deadline, refusal); the edge keeps its previous adapter."""


class _EdgeLost(Exception):
    """The edge vanished while it applied the payload (internal: deliver() sends the payload again)."""


@dataclass
class Delivery:
    """What one delivery did, measured."""

    session: int
    payload_bytes: int
    packets_total: int
    delivered: bool = False
    bursts: int = 0
    packets_sent: int = 0
    samples_sent: int = 0
    mcs_per_burst: list[str] = field(default_factory=list)
    snr_reports: list[SnrReport] = field(default_factory=list)
    apply: ApplyResult | None = None
    edge_restarts: int = 0
    wall_s: float = 0.0
    frame: str = "v1"
    """v2: packets_* stay 0; codewords, burst reports and timeouts count instead"""
    burst_reports: list[BurstReport] = field(default_factory=list)
    codewords_sent: int = 0
    codewords_ok: int = 0
    timeouts: int = 0

    @property
    def packets_retransmitted(self) -> int:
        return self.packets_sent - self.packets_total

    @property
    def codewords_resent(self) -> int:
        """v2: codewords sent beyond those that arrived (repairs, and bursts resent after a timeout)."""
        return max(self.codewords_sent - self.codewords_ok, 0)

    def airtime_s(self, sample_rate_hz: float) -> float:
        return self.samples_sent / sample_rate_hz

    @property
    def snr_db_measured(self) -> float | None:
        """Mean of the edge's per-burst means, weighted by packets (v2: codewords) detected."""
        pairs = [(r.mean_snr_db, r.packets_detected) for r in self.snr_reports if r.mean_snr_db is not None]
        pairs += [(r.snr_db, r.codewords_ok + r.codewords_failed) for r in self.burst_reports
                  if r.detected and r.snr_db is not None]
        total = sum(n for _, n in pairs)
        return sum(s * n for s, n in pairs) / total if total else None
