"""The policy interface: a rank policy maps a PolicyState to one rank per adapted projection.

Implementations: policy/baselines.py (fixed, heuristic, random), policy/learned.py (trained learners, AdaLoRA);
policy/registry.py builds one from a spec such as 'fixed:8'.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from policy.state import PolicyState


class Policy(ABC):
    """Maps a state to one rank per adapted projection (0 leaves a projection out)."""

    name: str = "policy"
    adalora_target_rank: int | None = None
    """Set by the AdaLoRA baseline: the round trains AdaLoRA at this average rank budget instead of LoRA at choose()'s ranks."""

    @abstractmethod
    def choose(self, state: PolicyState) -> dict[str, int]:
        """Ranks for every module in state.modules."""
