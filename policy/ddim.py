"""A conditional DDIM over rank vectors: residual-MLP noise predictor, classifier-free guidance, eta-0 sampling.

x: rank vectors scaled to [-1, 1], shape [B, n]. cond: the latent that conditions the denoiser, shape [B, c].
Training uses a 1000-step linear beta schedule and drops the condition with probability `cond_dropout`, so one
network predicts both eps(x_t, t, c) and eps(x_t, t, null); sampling runs `sample_steps` DDIM steps and mixes
eps = eps_null + guidance * (eps_c - eps_null).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DdimConfig:
    """Denoiser size, noise schedule and guidance."""

    hidden: int = 128
    """width of the residual MLP"""
    blocks: int = 3
    """residual blocks"""
    train_steps: int = 1000
    """diffusion steps of the training schedule"""
    beta_start: float = 1e-4
    """first beta of the linear schedule"""
    beta_end: float = 0.02
    """last beta of the linear schedule"""
    sample_steps: int = 50
    """DDIM sampling steps"""
    eta: float = 0.0
    """DDIM stochasticity (0: deterministic given x_T)"""
    guidance: float = 1.5
    """classifier-free guidance scale (1: the conditional model alone)"""
    cond_dropout: float = 0.1
    """probability of training on the null condition"""


def timestep_embedding(t: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """Pre-norm residual MLP block: x + Linear(SiLU(Linear(LayerNorm(x))))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class Denoiser(nn.Module):
    """eps(x_t, t, cond): a residual MLP; `keep` [B] in {0, 1} masks the condition (0 = the null condition)."""

    def __init__(self, x_dim: int, cond_dim: int, cfg: DdimConfig) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.inp = nn.Linear(x_dim + 32 + cond_dim + 1, cfg.hidden)
        self.blocks = nn.Sequential(*[ResBlock(cfg.hidden) for _ in range(cfg.blocks)])
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, x_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        keep = keep.float()[:, None]
        h = torch.cat([x, timestep_embedding(t), cond * keep, keep], dim=1)
        return self.out(self.blocks(self.inp(h)))


class Ddim(nn.Module):
    """The denoiser with its noise schedule: weighted training loss and guided DDIM sampling."""

    def __init__(self, x_dim: int, cond_dim: int, cfg: DdimConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DdimConfig()
        self.x_dim, self.cond_dim = x_dim, cond_dim
        self.model = Denoiser(x_dim, cond_dim, self.cfg)
        betas = torch.linspace(self.cfg.beta_start, self.cfg.beta_end, self.cfg.train_steps, dtype=torch.float64)
        self.register_buffer("alpha_bar", torch.cumprod(1.0 - betas, 0).float())

    def loss(self, x0: torch.Tensor, cond: torch.Tensor, weights: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise-prediction MSE per sample, weighted (e.g. by reward) and averaged; condition dropped at random."""
        b = x0.shape[0]
        t = torch.randint(0, self.cfg.train_steps, (b,), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        ab = self.alpha_bar[t][:, None]
        xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
        keep = (torch.rand(b, generator=generator) >= self.cfg.cond_dropout).float()
        per_sample = ((self.model(xt, t, cond, keep) - eps) ** 2).mean(dim=1)
        if weights is None:
            return per_sample.mean()
        return (weights * per_sample).sum() / weights.sum().clamp_min(1e-8)

    def guided_eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
        """eps_null + guidance * (eps_cond - eps_null); guidance 1 is the conditional model alone."""
        ones = torch.ones(x.shape[0])
        eps_c = self.model(x, t, cond, ones)
        if guidance == 1.0:
            return eps_c
        eps_u = self.model(x, t, cond, torch.zeros(x.shape[0]))
        return eps_u + guidance * (eps_c - eps_u)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, x_t: torch.Tensor | None = None, steps: int | None = None,
               eta: float | None = None, guidance: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM from x_T ~ N(0, I) (or the given x_t) to x_0 in [-1, 1]; deterministic given x_T when eta = 0."""
        cfg = self.cfg
        steps = steps or cfg.sample_steps
        eta = cfg.eta if eta is None else eta
        guidance = cfg.guidance if guidance is None else guidance
        x = torch.randn((cond.shape[0], self.x_dim), generator=generator) if x_t is None else x_t.clone()
        times = torch.linspace(cfg.train_steps - 1, 0, steps).round().long()
        for i, t in enumerate(times):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[times[i + 1]] if i + 1 < steps else torch.tensor(1.0)
            eps = self.guided_eps(x, t.repeat(x.shape[0]), cond, guidance)
            x0 = ((x - (1.0 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
            eps = (x - ab.sqrt() * x0) / (1.0 - ab).sqrt()  # consistent with the clipped x0
            sigma = eta * ((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)).clamp_min(0.0).sqrt()
            x = ab_prev.sqrt() * x0 + (1.0 - ab_prev - sigma ** 2).clamp_min(0.0).sqrt() * eps
            if eta > 0.0 and i + 1 < steps:
                x = x + sigma * torch.randn(x.shape, generator=generator)
        return x.clamp(-1.0, 1.0)
