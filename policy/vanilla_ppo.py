"""Vanilla PPO for ranks: the Gaussian actor's action is the rank vector itself, scaled to [-1, 1]^n."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from policy.problem import Problem
from policy.ppo import Agent, PpoConfig, RewardScaler, make_batch, ppo_update

BUFFER_KEYS = ("obs", "actions", "logprobs", "rewards", "values", "dones")


class VanillaPpo:
    """A PPO learner whose action is the rank vector (rounded to 0..r_max per projection)."""

    kind = "ppo"

    def __init__(self, problem: Problem, cfg: PpoConfig | None = None, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.problem = problem
        self.cfg = cfg or PpoConfig()
        self.agent = Agent(problem.obs_dim, problem.n, self.cfg)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=self.cfg.lr, eps=1e-5)
        self.rng = np.random.default_rng(seed)
        self.scale = RewardScaler()
        self.buf: dict[str, list] = {k: [] for k in BUFFER_KEYS}

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool = True) -> tuple[list[list[int]], dict]:
        """Ranks for a batch of states [B, obs_dim]; with explore, a sampled action and what PPO needs."""
        o = torch.as_tensor(obs, dtype=torch.float32)
        if not explore:
            return [self.problem.to_ranks(a) for a in self.agent.actor_mean(o).numpy()], {}
        action, logprob, _, value = self.agent.act(o)
        rec = {"obs": obs, "actions": action.numpy(), "logprobs": logprob.numpy(), "values": value.numpy()}
        return [self.problem.to_ranks(a) for a in rec["actions"]], rec

    def record(self, rec: dict, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Append one vectorized step and its scaled rewards to the rollout buffer."""
        for k, v in rec.items():
            self.buf[k].append(v)
        self.buf["rewards"].append(self.scale(rewards))
        self.buf["dones"].append(np.asarray(dones, bool))

    def _batch(self, next_obs: np.ndarray):
        with torch.no_grad():
            next_value = self.agent.value(torch.as_tensor(next_obs, dtype=torch.float32)).numpy()
        b = self.buf
        return make_batch(b["obs"], b["actions"], b["logprobs"], b["rewards"], b["values"], b["dones"], next_value,
                          self.cfg)

    def update(self, next_obs: np.ndarray) -> dict[str, float]:
        """One PPO update on the rollout buffer (then emptied); the loss statistics."""
        stats = ppo_update(self.agent, self.optimizer, self._batch(next_obs), self.cfg, self.rng)
        self.buf = {k: [] for k in BUFFER_KEYS}
        return stats

    def checkpoint(self) -> dict:
        """The config and state dict a checkpoint file holds."""
        return {"kind": self.kind, "ppo_config": asdict(self.cfg), "agent": self.agent.state_dict()}

    def load(self, ckpt: dict) -> None:
        """Restore the agent state dict of a checkpoint."""
        self.agent.load_state_dict(ckpt["agent"])
