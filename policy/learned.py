"""Trained policies behind the Policy interface (vanilla PPO, hierarchical AirLLM) and AdaLoRA as a policy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from policy.base import Policy
from policy.problem import Problem
from policy.state import PolicyState
from testbed.errors import AirLoraError

if TYPE_CHECKING:
    from policy.airllm import AirLlm
    from policy.vanilla_ppo import VanillaPpo


class LearnedPolicy(Policy):
    """A checkpointed learner: state vector from the PolicyState (the edge's measured SNR), deterministic ranks."""

    def __init__(self, path: str | Path, learner: VanillaPpo | AirLlm | None = None) -> None:
        from policy import checkpoint

        if learner is None:
            ckpt = checkpoint.load(path)
            problem = Problem(list(ckpt["modules"]), {m: tuple(s) for m, s in ckpt["shapes"].items()}, link=None,
                              r_max=int(ckpt["r_max"]), snr_db_range=tuple(ckpt["snr_db_range"]))
            learner = checkpoint.learner_from(ckpt, problem)
        self.learner = learner
        self.name = f"{learner.kind}:{path}"

    def choose(self, state: PolicyState) -> dict[str, int]:
        p = self.learner.problem
        if list(state.modules) != list(p.modules):
            raise AirLoraError(f"{self.name} was trained on {len(p.modules)} other projections than this model's "
                               f"{len(state.modules)}: train it on this model's config")
        ranks = self.learner.act(p.observe_state(state)[None], explore=False)[0][0]
        ranks = [min(r, state.r_max) for r in ranks]
        if not any(ranks):  # nothing adapted is not a deliverable adapter: keep the smallest one
            ranks[0] = 1
        return dict(zip(p.modules, ranks))


class AdaLoraPolicy(Policy):
    """AdaLoRA (peft's budget allocation) at an average rank budget: it picks its ranks while it trains.

    choose() returns the uniform starting budget; an environment step or a host round that sees
    `adalora_target_rank` trains with ml.finetune.train_adalora instead, and the trained ranks are what ship.
    """

    def __init__(self, target_rank: int = 4) -> None:
        self.adalora_target_rank = target_rank
        self.name = f"adalora:{target_rank}"

    def choose(self, state: PolicyState) -> dict[str, int]:
        return {m: min(self.adalora_target_rank, state.r_max) for m in state.modules}
