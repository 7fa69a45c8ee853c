"""What a rank policy sees: the edge's measured SNR, the bandwidth, the data's features, the current ranks."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def rank_vector(self) -> list[int]:
        """Current ranks in module order."""
        return [int(self.ranks.get(m, 0)) for m in self.modules]
