"""The hierarchical AirLLM policy: a PPO actor emits a latent, a CFG-DDIM turns the latent into the rank vector.

The denoiser proposes candidate rank vectors, a reward critic Q(state, ranks) picks one; PPO and the denoiser
(reward-weighted, on a replay buffer) update in turn. How and why: policy/README.md, "The hierarchical policy".
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from policy.ddim import Ddim, DdimConfig
from policy.problem import Problem
from policy.ppo import Agent, PpoConfig, RewardScaler, make_batch, ppo_update
from policy.vanilla_ppo import BUFFER_KEYS


@dataclass
class AirLlmConfig:
    """The hierarchical part: latent size, replay buffer, reward weighting, exploration."""

    latent_dim: int = 16
    """size of the latent the PPO actor emits and the denoiser is conditioned on"""
    replay_size: int = 3000
    """steps kept in the replay buffer"""
    ddim_lr: float = 2e-3
    """denoiser learning rate"""
    ddim_updates: int = 100
    """denoiser gradient steps after each PPO update"""
    ddim_batch: int = 128
    """replay samples per denoiser step"""
    temperature: float = 0.3
    """reward weighting: exp(normalized advantage / temperature), clipped at exp(4)"""
    explore_std: float = 0.15
    """per-projection Gaussian noise added to the sampled rank vector (in [-1, 1] units) while training"""
    explore_shift_std: float = 0.4
    """one Gaussian shift shared by all projections of a sample (explores the adapter's overall size)"""
    explore_decay: float = 0.995
    """exploration noise is multiplied by this after every update"""
    sample_seed: int = 0
    """seed of the fixed x_T draws the deployed policy denoises from (deterministic choices)"""
    candidates: int = 16
    """rank vectors denoised per decision (one latent, different x_T); the reward critic picks one"""
    critic_hidden: int = 256
    """width of the reward critic's two hidden layers"""
    critic_lr: float = 1e-3
    """reward critic learning rate"""
    critic_updates: int = 100
    """reward critic gradient steps after each PPO update"""
    critic_warmup: int = 256
    """replay steps before the critic picks candidates (until then the first candidate is executed)"""


class RewardCritic(nn.Module):
    """Q(state, rank vector): the expected step reward, in units of the replay buffer's reward spread."""

    def __init__(self, obs_dim: int, x_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim + x_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, obs: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, x0], dim=-1)).squeeze(-1)


class AirLlm:
    """PPO actor (state -> latent) + CFG-DDIM (latent -> rank vector), trained alternately."""

    kind = "airllm"

    def __init__(self, problem: Problem, ppo: PpoConfig | None = None, ddim: DdimConfig | None = None,
                 cfg: AirLlmConfig | None = None, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.problem = problem
        self.ppo_cfg = ppo or PpoConfig(actor_out_gain=1.0)
        self.ddim_cfg = ddim or DdimConfig()
        self.cfg = cfg or AirLlmConfig()
        self.agent = Agent(problem.obs_dim, self.cfg.latent_dim, self.ppo_cfg)
        self.ddim = Ddim(problem.n, self.cfg.latent_dim, self.ddim_cfg)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=self.ppo_cfg.lr, eps=1e-5)
        self.ddim_optimizer = torch.optim.Adam(self.ddim.parameters(), lr=self.cfg.ddim_lr)
        self.critic = RewardCritic(problem.obs_dim, problem.n, self.cfg.critic_hidden)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.cfg.critic_lr)
        self.critic_ready = False
        self.rng = np.random.default_rng(seed)
        self.scale = RewardScaler()
        self.gen = torch.Generator().manual_seed(seed)
        self.replay: deque = deque(maxlen=self.cfg.replay_size)
        self.explore_std = self.cfg.explore_std
        self.x_fixed = torch.randn((self.cfg.candidates, problem.n),
                                   generator=torch.Generator().manual_seed(self.cfg.sample_seed))
        self._clear()

    def _clear(self) -> None:
        self.buf: dict[str, list] = {k: [] for k in BUFFER_KEYS + ("x0", "raw_rewards")}

    @torch.no_grad()
    def _pick(self, obs: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The critic's best of each state's candidates: x0 [B, K, n] -> [B, n] (the first before warm-up)."""
        if not self.critic_ready:
            return x0[:, 0]
        b, k, n = x0.shape
        q = self.critic(obs.repeat_interleave(k, dim=0), x0.reshape(b * k, n)).reshape(b, k)
        return x0[torch.arange(b), q.argmax(dim=1)]

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool = True) -> tuple[list[list[int]], dict]:
        """Ranks for a batch of states [B, obs_dim]: latent from the actor, candidates from the denoiser, the
        critic's pick. Deterministic (fixed x_T draws, the actor's mean latent) unless exploring."""
        o = torch.as_tensor(obs, dtype=torch.float32)
        b, k = o.shape[0], self.cfg.candidates
        if not explore:
            latent = self.agent.actor_mean(o)
            x0 = self.ddim.sample(latent.repeat_interleave(k, dim=0), x_t=self.x_fixed.repeat(b, 1))
            return [self.problem.to_ranks(x) for x in self._pick(o, x0.reshape(b, k, -1)).numpy()], {}
        latent, logprob, _, value = self.agent.act(o)
        x0 = self.ddim.sample(latent.repeat_interleave(k, dim=0), generator=self.gen).numpy().reshape(b, k, -1)
        scale = self.explore_std / self.cfg.explore_std
        noise = self.rng.normal(0.0, self.explore_std, x0.shape)
        noise += self.rng.normal(0.0, self.cfg.explore_shift_std * scale, (b, k, 1))
        x0 = self._pick(o, torch.as_tensor(np.clip(x0 + noise, -1.0, 1.0), dtype=torch.float32)).numpy()
        rec = {"obs": obs, "actions": latent.numpy(), "logprobs": logprob.numpy(), "values": value.numpy(), "x0": x0}
        return [self.problem.to_ranks(x) for x in x0], rec

    def record(self, rec: dict, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Append one vectorized step (observations, actions, log-probs, values) and its raw rewards to the buffer."""
        for k, v in rec.items():
            self.buf[k].append(v)
        self.buf["raw_rewards"].append(np.asarray(rewards, np.float64))  # the critic learns unscaled rewards
        self.buf["rewards"].append(self.scale(rewards))
        self.buf["dones"].append(np.asarray(dones, bool))

    def update(self, next_obs: np.ndarray) -> dict[str, float]:
        """One PPO update of the actor, then the denoiser's reward-weighted updates and the reward critic's
        regression, both on the replay buffer."""
        b = self.buf
        with torch.no_grad():
            next_value = self.agent.value(torch.as_tensor(next_obs, dtype=torch.float32)).numpy()
        batch = make_batch(b["obs"], b["actions"], b["logprobs"], b["rewards"], b["values"], b["dones"], next_value,
                           self.ppo_cfg)
        x0, raw = np.concatenate(b["x0"]), np.concatenate(b["raw_rewards"])
        for o, z, x, adv, r in zip(batch.obs.numpy(), batch.actions.numpy(), x0, batch.advantages.numpy(), raw):
            self.replay.append((z, x, float(adv), o, float(r)))
        stats = ppo_update(self.agent, self.optimizer, batch, self.ppo_cfg, self.rng)
        stats["ddim_loss"] = self.update_ddim()
        stats["critic_loss"] = self.update_critic()
        self.explore_std *= self.cfg.explore_decay
        self._clear()
        return stats

    def update_ddim(self) -> float:
        """One reward-weighted denoising pass over the replay buffer; the mean loss."""
        z = torch.as_tensor(np.stack([r[0] for r in self.replay]), dtype=torch.float32)
        x0 = torch.as_tensor(np.stack([r[1] for r in self.replay]), dtype=torch.float32)
        adv = np.array([r[2] for r in self.replay])
        norm = (adv - adv.mean()) / (adv.std() + 1e-8)
        w = torch.as_tensor(np.exp(np.minimum(norm / self.cfg.temperature, 4.0)), dtype=torch.float32)
        loss = 0.0
        for _ in range(self.cfg.ddim_updates):
            idx = torch.as_tensor(self.rng.integers(0, len(self.replay), self.cfg.ddim_batch))
            step_loss = self.ddim.loss(x0[idx], z[idx], w[idx], generator=self.gen)
            self.ddim_optimizer.zero_grad()
            step_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.ddim.parameters(), 1.0)
            self.ddim_optimizer.step()
            loss = step_loss.item()
        return loss

    def update_critic(self) -> float:
        """Regress the critic on the replay buffer's (state, executed rank vector, reward), rewards standardized."""
        obs = torch.as_tensor(np.stack([r[3] for r in self.replay]), dtype=torch.float32)
        x0 = torch.as_tensor(np.stack([r[1] for r in self.replay]), dtype=torch.float32)
        reward = np.array([r[4] for r in self.replay])
        target = torch.as_tensor((reward - reward.mean()) / (reward.std() + 1e-8), dtype=torch.float32)
        loss = 0.0
        for _ in range(self.cfg.critic_updates):
            idx = torch.as_tensor(self.rng.integers(0, len(self.replay), self.cfg.ddim_batch))
            step_loss = ((self.critic(obs[idx], x0[idx]) - target[idx]) ** 2).mean()
            self.critic_optimizer.zero_grad()
            step_loss.backward()
            self.critic_optimizer.step()
            loss = step_loss.item()
        self.critic_ready = len(self.replay) >= self.cfg.critic_warmup
        return loss

    def checkpoint(self) -> dict:
        """The configs and state dicts a checkpoint file holds."""
        return {"kind": self.kind, "ppo_config": asdict(self.ppo_cfg), "ddim_config": asdict(self.ddim_cfg),
                "airllm_config": asdict(self.cfg), "agent": self.agent.state_dict(), "ddim": self.ddim.state_dict(),
                "critic": self.critic.state_dict(), "critic_ready": self.critic_ready}

    def load(self, ckpt: dict) -> None:
        """Restore the state dicts of a checkpoint."""
        self.agent.load_state_dict(ckpt["agent"])
        self.ddim.load_state_dict(ckpt["ddim"])
        self.critic.load_state_dict(ckpt["critic"])
        self.critic_ready = bool(ckpt["critic_ready"])
