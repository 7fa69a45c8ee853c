"""Differentially private aggregation of edge adapters (DP-FedAvg, edge-level) and its privacy accounting.

Each edge's update is what it changed against the round's reference (the global adapter it started from, or the
base model's head and no LoRA in round 1): per module scaling x B A minus the reference's, and the head's
parameters minus the reference's. The update is clipped to L2 norm `clip_norm` as a whole, the clipped updates
are averaged over the n edges that reported, and Gaussian noise of std noise_multiplier x clip_norm / n is added
to every coordinate of the mean (McMahan et al. 2018, with the fixed denominator n). One round is then a
Gaussian mechanism of noise multiplier z on an edge's contribution; the rounds compose, and the RDP accountant
of Google's `dp-accounting` package turns R rounds into epsilon at the configured delta. The noised update is
re-projected to the global rank by a truncated SVD (post-processing: no privacy cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.adapter import Adapter
from ml.aggregate import factors_from_delta


@dataclass
class DpRound:
    """What one private aggregation did: each edge's update norm, how many were clipped, the noise std."""

    norms: list[float]
    clipped: int
    noise_std: float


def _delta_or_zero(adapter: Adapter, module: str, shape: tuple[int, int]) -> np.ndarray:
    return adapter.delta(module) if adapter.ranks.get(module, 0) else np.zeros(shape)


def updates(reference: Adapter | Sequence[Adapter], clients: Sequence[Adapter],
            shapes: dict[str, tuple[int, int]]) -> list[dict]:
    """Each client's update against its starting point (one reference for all, or one per client):
    {'lora': {module: out x in}, 'head': {name: array}}."""
    starts = [reference] * len(clients) if isinstance(reference, Adapter) else list(reference)
    out = []
    for c, start in zip(clients, starts):
        lora = {m: _delta_or_zero(c, m, shapes[m]) - _delta_or_zero(start, m, shapes[m]) for m in shapes}
        head = {k: c.head[k].astype(np.float64) - start.head[k].astype(np.float64) for k in start.head}
        out.append({"lora": lora, "head": head})
    return out


def norm(update: dict) -> float:
    """L2 norm of a whole update (every module and the head)."""
    return float(np.sqrt(sum(np.sum(v ** 2) for part in update.values() for v in part.values())))


def private_aggregate(reference: Adapter, clients: Sequence[Adapter], shapes: dict[str, tuple[int, int]],
                      ranks: dict[str, int], clip_norm: float, noise_multiplier: float,
                      rng: np.random.Generator, starts: Sequence[Adapter] | None = None) -> tuple[Adapter, DpRound]:
    """The reference plus the noised mean of the clipped updates, re-projected to `ranks` (0 drops a module).
    starts: where each client began (the reference re-projected to its ranks, ml.aggregate.truncate); its update is
    measured from there, so the re-projection's residual is not spent from the clip budget (default: the reference)."""
    if not clients:
        raise ValueError("nothing to aggregate: no adapters")
    if not clip_norm > 0 or noise_multiplier < 0:
        raise ValueError("fed.dp.clip_norm must be > 0 and fed.dp.noise_multiplier >= 0")
    ups = updates(reference if starts is None else starts, clients, shapes)
    norms = [norm(u) for u in ups]
    factors = [min(1.0, clip_norm / n) if n > 0 else 1.0 for n in norms]
    n = len(clients)
    std = noise_multiplier * clip_norm / n
    a, b = {}, {}
    for m, shape in shapes.items():
        mean = sum(f * u["lora"][m] for f, u in zip(factors, ups)) / n
        noisy = _delta_or_zero(reference, m, shape) + mean + rng.normal(0.0, std, shape)
        if ranks.get(m, 0):
            a[m], b[m], _ = factors_from_delta(noisy, ranks[m])
    head = {}
    for k, ref in reference.head.items():
        mean = sum(f * u["head"][k] for f, u in zip(factors, ups)) / n
        head[k] = (ref.astype(np.float64) + mean + rng.normal(0.0, std, ref.shape)).astype(np.float32)
    kept = {m: int(a[m].shape[0]) for m in a}
    g = Adapter(kept, {m: float(r) for m, r in kept.items()}, a, b, head, list(clients[0].modules_to_save),
                clients[0].dropout, {"method": "fed-svd-dp", "clients": n})
    return g, DpRound(norms, sum(f < 1.0 for f in factors), std)


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon at delta after `rounds` Gaussian rounds of this noise multiplier (RDP accountant); inf without noise."""
    if rounds <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return float("inf")
    import dp_accounting
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return float(accountant.get_epsilon(delta))


def noise_for_epsilon(target_epsilon: float, rounds: int, delta: float) -> float:
    """The smallest noise multiplier whose `rounds` rounds spend at most target_epsilon at delta."""
    import dp_accounting
    from dp_accounting import rdp

    if not target_epsilon > 0 or rounds < 1:
        raise ValueError("fed.dp.target_epsilon must be > 0 and fed.rounds at least 1")
    return float(dp_accounting.calibrate_dp_mechanism(
        rdp.RdpAccountant, lambda z: dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), rounds),
        target_epsilon, delta, dp_accounting.LowerEndpointAndGuess(1e-3, 1.0)))
