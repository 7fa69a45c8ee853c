"""What a rank policy sees: the edge's measured SNR, the bandwidth, the data's features, the current ranks.

For a fleet, `snr_db` is the SNR the fleet's MCS rule picks for (the worst edge's, or a percentile), so every
policy, trained ones included, reads the same input as for one edge; `fleet_snr_db` holds each edge's own
measurement and the summaries below, for policies that look at the whole fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PolicyState:
    """The decision state of one round (all values measured or known, none assumed)."""

    snr_db: float  # the edge's latest measured SNR (mean of its per-packet estimates)
    bandwidth_hz: float  # occupied bandwidth of the link
    entropy: float  # normalized lexical entropy of the next training data, in [0, 1]
    oov_rate: float  # word-level out-of-vocabulary rate against the training vocabulary
    modules: list[str]  # adaptable projections, in a fixed order
    shapes: dict[str, tuple[int, int]]  # (out_features, in_features) per module
    ranks: dict[str, int] = field(default_factory=dict)  # current ranks (0 = not adapted)
    r_max: int = 16
    deadline_s: float = 60.0  # airtime budget of one adapter delivery
    fleet_snr_db: list[float] = field(default_factory=list)  # every edge's measured SNR (empty: one edge)

    @property
    def snr_db_min(self) -> float:
        """The weakest edge's measured SNR (snr_db for one edge)."""
        return float(min(self.fleet_snr_db)) if self.fleet_snr_db else self.snr_db

    @property
    def snr_db_mean(self) -> float:
        """The fleet's mean measured SNR (snr_db for one edge)."""
        return float(np.mean(self.fleet_snr_db)) if self.fleet_snr_db else self.snr_db

    def snr_db_percentile(self, q: float) -> float:
        """A percentile (0..100) of the fleet's measured SNRs (snr_db for one edge)."""
        return float(np.percentile(self.fleet_snr_db, q)) if self.fleet_snr_db else self.snr_db

    def rank_vector(self) -> list[int]:
        """Current ranks in module order."""
        return [int(self.ranks.get(m, 0)) for m in self.modules]
