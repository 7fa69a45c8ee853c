"""The policy registry: build a rank policy from a spec such as 'fixed:8', 'heuristic' or 'airllm:<checkpoint>'."""

from __future__ import annotations

from typing import Any

from policy import baselines
from policy.base import Policy
from testbed.errors import AirLoraError


def make_policy(spec: str, **context: Any) -> Policy:
    """Build a policy from 'fixed:8', 'heuristic', 'random[:seed]', 'adalora[:target_rank]', 'ppo:<checkpoint>'
    or 'airllm[:<checkpoint>]' (default: context['checkpoint'], else runs/policy/airllm.pt)."""
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
    if kind == "adalora":
        from policy.learned import AdaLoraPolicy

        return AdaLoraPolicy(int(arg or context.get("adalora_target_rank", 4)))
    if kind in ("ppo", "airllm"):
        from policy.learned import LearnedPolicy

        path = arg or context.get("checkpoint") or f"runs/policy/{kind}.pt"
        return LearnedPolicy(path)
    raise AirLoraError(f"unknown policy {spec!r}; known: fixed:<rank>, heuristic, random[:seed], adalora[:rank], "
                       "ppo:<checkpoint>, airllm[:<checkpoint>]")
