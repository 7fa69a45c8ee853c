"""Baseline policies: fixed rank, SNR-threshold heuristic (largest uniform rank meeting the deadline), random."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policy.base import Policy
from policy.state import PolicyState


class FixedRank(Policy):
    """The same rank on every projection, whatever the channel."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.name = f"fixed:{rank}"

    def choose(self, state: PolicyState) -> dict[str, int]:
        return {m: self.rank for m in state.modules}


class SnrThreshold(Policy):
    """The largest uniform rank whose real airtime at the measured SNR fits the deadline (the smallest if none)."""

    name = "heuristic"

    def __init__(self, cost: Callable[[dict[str, int], float], float],
                 candidates: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)) -> None:
        self.cost = cost  # (ranks, snr_db) -> airtime_s
        self.candidates = candidates

    def choose(self, state: PolicyState) -> dict[str, int]:
        best = min(self.candidates)
        for r in sorted(self.candidates):
            if r > state.r_max:
                break
            ranks = {m: r for m in state.modules}
            if self.cost(ranks, state.snr_db) <= state.deadline_s:
                best = r
        return {m: best for m in state.modules}


class RandomRanks(Policy):
    """Ranks drawn uniformly from 1..r_max per projection (a sanity baseline). The draw is seeded by the policy's
    seed and the state, so a state always gets the same ranks whichever process asks and in whatever order (a
    sweep's cells run as jobs)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def choose(self, state: PolicyState) -> dict[str, int]:
        bits = np.array([state.snr_db, state.entropy, state.oov_rate], np.float64).view(np.uint64)
        rng = np.random.default_rng([self.seed, *(int(b) for b in bits)])
        return {m: int(rng.integers(1, state.r_max + 1)) for m in state.modules}
