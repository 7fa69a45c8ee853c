"""PPO with a Gaussian policy over a continuous action (CleanRL style): GAE, clipped objective, value loss.

The pieces are plain functions so they can be checked on tiny cases: `gae` (advantages and returns),
`clipped_policy_loss`, `ppo_update`. `Agent` is an actor (two hidden layers, tanh) with a state-independent
log-std, and a critic of the same shape. Both vanilla PPO (action = ranks) and the hierarchical policy
(action = the DDIM's latent) use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal


@dataclass
class PpoConfig:
    """PPO hyperparameters (CleanRL's continuous-action defaults where they fit)."""

    hidden: int = 256
    """width of the actor's and critic's two hidden layers"""
    lr: float = 3e-4
    """Adam learning rate"""
    gamma: float = 0.0
    """discount; 0 because the ranks chosen now change neither the channel nor the next data batch"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip_coef: float = 0.2
    """surrogate clipping coefficient"""
    ent_coef: float = 0.0
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    update_epochs: int = 10
    """epochs over each batch"""
    minibatch_size: int = 32
    """samples per minibatch"""
    episodes_per_update: int = 2
    """episodes collected before each update"""
    init_log_std: float = -0.5
    """initial log standard deviation of the Gaussian policy"""
    actor_out_gain: float = 0.01
    """orthogonal-init gain of the actor's last layer"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""


def layer_init(layer: nn.Linear, gain: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with `gain` and a constant bias (CleanRL initialisation)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    """Gaussian actor and value critic over a flat observation."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: PpoConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.critic = nn.Sequential(layer_init(nn.Linear(obs_dim, h)), nn.Tanh(), layer_init(nn.Linear(h, h)),
                                    nn.Tanh(), layer_init(nn.Linear(h, 1), 1.0))
        self.actor_mean = nn.Sequential(layer_init(nn.Linear(obs_dim, h)), nn.Tanh(), layer_init(nn.Linear(h, h)),
                                        nn.Tanh(), layer_init(nn.Linear(h, act_dim), cfg.actor_out_gain))
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), cfg.init_log_std))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """[B] state values."""
        return self.critic(obs).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> Normal:
        """The Gaussian action distribution at each observation (state-independent log-std)."""
        mean = self.actor_mean(obs)
        return Normal(mean, self.actor_logstd.expand_as(mean).exp())

    def act(self, obs: torch.Tensor, action: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-prob, entropy, value); samples an action when none is given."""
        d = self.dist(obs)
        if action is None:
            action = d.sample()
        return action, d.log_prob(action).sum(-1), d.entropy().sum(-1), self.value(obs)


class RewardScaler:
    """Divides rewards by the running standard deviation of all rewards seen (like CleanRL's NormalizeReward),
    so the value loss does not swamp the policy gradient under gradient clipping."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        for x in np.asarray(rewards, float).ravel():
            self.count += 1
            delta = x - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (x - self.mean)
        std = np.sqrt(self.m2 / self.count) if self.count > 1 else 1.0
        return np.asarray(rewards, float) / max(std, 1e-6)


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, next_value: float, gamma: float,
        lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over one trajectory of T steps.

    dones[t] = 1 when step t ended its episode (no bootstrap from values[t + 1]); next_value bootstraps the
    step after the last. Returns (advantages, returns = advantages + values).
    """
    T = len(rewards)
    adv = np.zeros(T, np.float64)
    last = 0.0
    for t in reversed(range(T)):
        nonterminal = 1.0 - float(dones[t])
        next_v = next_value if t == T - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_v * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + np.asarray(values, np.float64)


def clipped_policy_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
                        clip_coef: float) -> torch.Tensor:
    """PPO's clipped surrogate, as a loss: mean(max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)))."""
    ratio = (new_logprob - old_logprob).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)).mean()


@dataclass
class Batch:
    """A collected batch (flat over steps)."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def make_batch(obs: list[np.ndarray], actions: list[np.ndarray], logprobs: list[np.ndarray],
               rewards: list[np.ndarray], values: list[np.ndarray], dones: list[np.ndarray], next_value: np.ndarray,
               cfg: PpoConfig) -> Batch:
    """Flatten T steps of B parallel environments ([B, ...] per step) into one batch, with GAE per environment."""
    r, v, d = np.stack(rewards), np.stack(values), np.stack(dones).astype(float)  # [T, B]
    adv, ret = np.zeros_like(r), np.zeros_like(r)
    for b in range(r.shape[1]):
        adv[:, b], ret[:, b] = gae(r[:, b], v[:, b], d[:, b], float(next_value[b]), cfg.gamma, cfg.gae_lambda)
    f = torch.float32

    def flat(x: list[np.ndarray]) -> torch.Tensor:
        a = np.stack(x)
        return torch.as_tensor(a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), dtype=f)

    return Batch(flat(obs), flat(actions), flat(logprobs), torch.as_tensor(adv.reshape(-1), dtype=f),
                 torch.as_tensor(ret.reshape(-1), dtype=f))


def ppo_update(agent: Agent, optimizer: torch.optim.Optimizer, batch: Batch, cfg: PpoConfig,
               rng: np.random.Generator) -> dict[str, float]:
    """update_epochs passes of minibatch SGD on the clipped objective + value loss - entropy bonus."""
    n = batch.obs.shape[0]
    stats = {}
    for _ in range(cfg.update_epochs):
        order = rng.permutation(n)
        for start in range(0, n, cfg.minibatch_size):
            idx = torch.as_tensor(order[start:start + cfg.minibatch_size])
            _, logprob, entropy, value = agent.act(batch.obs[idx], batch.actions[idx])
            adv = batch.advantages[idx]
            if cfg.norm_adv and len(idx) > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = clipped_policy_loss(logprob, batch.logprobs[idx], adv, cfg.clip_coef)
            v_loss = 0.5 * ((value - batch.returns[idx]) ** 2).mean()
            loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy.mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            optimizer.step()
            stats = {"pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "entropy": entropy.mean().item()}
    return stats
