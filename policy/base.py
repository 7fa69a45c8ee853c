"""The policy interface and the registry that builds a policy from a spec such as 'fixed:8'."""

from __future__ import annotations

from abc import ABC, abstractmethod

from policy.state import PolicyState
from testbed.errors import AirLoraError


class Policy(ABC):
    """Maps a state to one rank per adapted projection (0 leaves a projection out)."""

    name: str = "policy"

    @abstractmethod
    def choose(self, state: PolicyState) -> dict[str, int]:
        """Ranks for every module in state.modules."""


def make_policy(spec: str, **context) -> Policy:
    """Build a policy from 'fixed:8', 'heuristic', 'random' (more in later modules)."""
    from policy import baselines

    kind, _, arg = spec.partition(":")
    if kind == "fixed":
        try:
            return baselines.FixedRank(int(arg or 8))
        except ValueError:
            raise AirLoraError(f"policy {spec!r}: expected fixed:<rank>") from None
    if kind == "heuristic":
        return baselines.SnrThreshold(context["cost"], **{k: v for k, v in context.items() if k in ("candidates",)})
    if kind == "random":
        return baselines.RandomRanks(seed=int(arg or 0))
    raise AirLoraError(f"unknown policy {spec!r}; known: fixed:<rank>, heuristic, random[:seed]")
