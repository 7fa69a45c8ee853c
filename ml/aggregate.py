"""Aggregate LoRA adapters of different ranks into one global adapter (torch-free).

Every module's update is scaling x B A (out x in). Three rules, all weighted by w_i (samples, summing to 1):

- `fedavg`: FedAvg of the zero-padded factors. A_i (r_i x in) and the scaled B_i (out x r_i) are padded with
  zeros to the largest rank and averaged separately: B_avg A_avg = sum_ij w_i w_j B_i A_j, which is not the
  average update (cross terms), the known flaw of averaging factors.
- `stack`: FLoRA stacking (Wang et al. 2024). A_stack = [w_1 A_1; ...; w_n A_n], B_stack = [B_1 ... B_n]:
  B_stack A_stack = sum_i w_i B_i A_i exactly, at rank sum_i r_i (capped by min(out, in), where the product is
  re-projected exactly by an SVD that drops only zero singular values).
- `svd`: the exact weighted update sum_i w_i B_i A_i re-projected to the global rank (the largest r_i) by a
  truncated SVD: the best approximation of that rank in Frobenius norm (Eckart-Young).

The global adapter folds the scaling into B (lora_alpha = r, scaling 1). Heads (modules_to_save) are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.adapter import Adapter

METHODS = ("fedavg", "stack", "svd")


def sample_weights(samples: Sequence[int]) -> np.ndarray:
    """w_i = n_i / sum n (uniform when every count is 0)."""
    n = np.asarray(samples, np.float64)
    if n.size == 0 or np.any(n < 0):
        raise ValueError("sample counts must be non-negative and at least one")
    return n / n.sum() if n.sum() > 0 else np.full(n.size, 1.0 / n.size)


def factors_from_delta(delta: np.ndarray, rank: int, scaling: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A r x in, B out x r, singular values) with scaling x B A the best rank-r approximation of delta:
    A = sqrt(S) V^T, B = U sqrt(S) / scaling (the singular values split evenly between the factors)."""
    u, s, vt = np.linalg.svd(np.asarray(delta, np.float64), full_matrices=False)
    r = max(1, min(int(rank), s.size))
    root = np.sqrt(s[:r])
    a = root[:, None] * vt[:r]
    b = u[:, :r] * root[None, :] / scaling
    return a.astype(np.float32), b.astype(np.float32), s


def _modules(adapters: Sequence[Adapter]) -> list[str]:
    return sorted({m for ad in adapters for m, r in ad.ranks.items() if r > 0})


def _heads(adapters: Sequence[Adapter], w: np.ndarray) -> dict[str, np.ndarray]:
    names = sorted(adapters[0].head)
    for ad in adapters[1:]:
        if sorted(ad.head) != names:
            raise ValueError("adapters carry different heads; they cannot be averaged")
    return {k: sum(wi * ad.head[k].astype(np.float64) for wi, ad in zip(w, adapters)).astype(np.float32)
            for k in names}


def _global(adapters: Sequence[Adapter], a: dict, b: dict, w: np.ndarray, method: str) -> Adapter:
    ranks = {m: int(a[m].shape[0]) for m in a}
    return Adapter(ranks, {m: float(r) for m, r in ranks.items()}, a, b, _heads(adapters, w),
                   list(adapters[0].modules_to_save), adapters[0].dropout,
                   {"method": f"fed-{method}", "clients": len(adapters)})


def fedavg(adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
    """FedAvg of zero-padded factors (scaling folded into B), at each module's largest rank."""
    w = np.asarray(weights, np.float64)
    a, b = {}, {}
    for m in _modules(adapters):
        r_max = max(ad.ranks.get(m, 0) for ad in adapters)
        out_dim = next(ad.lora_b[m].shape[0] for ad in adapters if ad.ranks.get(m, 0))
        in_dim = next(ad.lora_a[m].shape[1] for ad in adapters if ad.ranks.get(m, 0))
        a_sum, b_sum = np.zeros((r_max, in_dim)), np.zeros((out_dim, r_max))
        for wi, ad in zip(w, adapters):
            r = ad.ranks.get(m, 0)
            if r:
                a_sum[:r] += wi * ad.lora_a[m]
                b_sum[:, :r] += wi * ad.scaling(m) * ad.lora_b[m]
        a[m], b[m] = a_sum.astype(np.float32), b_sum.astype(np.float32)
    return _global(adapters, a, b, w, "fedavg")


def stack(adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
    """FLoRA stacking: B_stack A_stack = sum_i w_i scaling_i B_i A_i exactly (rank sum r_i, at most min(out, in))."""
    w = np.asarray(weights, np.float64)
    a, b = {}, {}
    for m in _modules(adapters):
        parts = [(wi, ad) for wi, ad in zip(w, adapters) if ad.ranks.get(m, 0)]
        big_a = np.concatenate([wi * ad.lora_a[m].astype(np.float64) for wi, ad in parts], axis=0)
        big_b = np.concatenate([ad.scaling(m) * ad.lora_b[m].astype(np.float64) for _, ad in parts], axis=1)
        if big_a.shape[0] > min(big_b.shape[0], big_a.shape[1]):  # more rows than the product can have rank
            a[m], b[m], _ = factors_from_delta(big_b @ big_a, min(big_b.shape[0], big_a.shape[1]))
        else:
            a[m], b[m] = big_a.astype(np.float32), big_b.astype(np.float32)
    return _global(adapters, a, b, w, "stack")


def weighted_delta(adapters: Sequence[Adapter], weights: Sequence[float], module: str) -> np.ndarray:
    """sum_i w_i scaling_i B_i A_i of one module (float64)."""
    total = None
    for wi, ad in zip(weights, adapters):
        if ad.ranks.get(module, 0):
            d = wi * ad.delta(module)
            total = d if total is None else total + d
    if total is None:
        raise ValueError(f"no adapter adapts {module}")
    return total


def svd(adapters: Sequence[Adapter], weights: Sequence[float], ranks: dict[str, int] | None = None) -> Adapter:
    """The exact weighted update re-projected by a truncated SVD to `ranks` (default: each module's largest rank)."""
    w = np.asarray(weights, np.float64)
    a, b = {}, {}
    for m in _modules(adapters):
        r = (ranks or {}).get(m) or max(ad.ranks.get(m, 0) for ad in adapters)
        a[m], b[m], _ = factors_from_delta(weighted_delta(adapters, w, m), r)
    return _global(adapters, a, b, w, "svd")


def aggregate(method: str, adapters: Sequence[Adapter], weights: Sequence[float],
              ranks: dict[str, int] | None = None) -> Adapter:
    """The global adapter by `method` (fedavg | stack | svd); ranks only applies to svd."""
    if not adapters:
        raise ValueError("nothing to aggregate: no adapters")
    if len(weights) != len(adapters):
        raise ValueError(f"{len(weights)} weights for {len(adapters)} adapters")
    if method == "fedavg":
        return fedavg(adapters, weights)
    if method == "stack":
        return stack(adapters, weights)
    if method == "svd":
        return svd(adapters, weights, ranks)
    raise ValueError(f"unknown aggregation {method!r}; known: {', '.join(METHODS)}")


def truncate(adapter: Adapter, ranks: dict[str, int], scalings: dict[str, float], seed: int = 0) -> Adapter:
    """The adapter's update per module as the best approximation at `ranks` (0 drops a module), with B divided by
    each module's scaling (lora_alpha = scaling x r): how an edge starts its local training from the global.

    Directions the update does not have (singular values of 0, e.g. a rank above the global's) start as LoRA
    starts: A rows drawn U(-1/sqrt(in), 1/sqrt(in)) (seeded), B columns 0; zero rows in A would never learn.
    A module the global adapter lacks starts that way whole."""
    rng = np.random.default_rng(seed)
    a, b, alphas = {}, {}, {}
    for m, r in sorted(ranks.items()):
        if r <= 0:
            continue
        if adapter.ranks.get(m, 0):
            a_m, b_m, s = factors_from_delta(adapter.delta(m), r, scalings[m])
            kept = int(np.sum(s[:a_m.shape[0]] > 1e-6 * max(float(s[0]), 1e-30)))
            out_dim, in_dim = b_m.shape[0], a_m.shape[1]
        else:
            kept, out_dim, in_dim = 0, *adapter_shape(adapter, m)
            a_m, b_m = np.zeros((0, in_dim), np.float32), np.zeros((out_dim, 0), np.float32)
        fresh = r - kept
        bound = 1.0 / np.sqrt(in_dim)
        a[m] = np.vstack([a_m[:kept], rng.uniform(-bound, bound, (fresh, in_dim)).astype(np.float32)])
        b[m] = np.hstack([b_m[:, :kept], np.zeros((out_dim, fresh), np.float32)])
        alphas[m] = scalings[m] * r
    kept_ranks = {m: int(a[m].shape[0]) for m in a}
    return Adapter(kept_ranks, alphas, a, b, {k: v.copy() for k, v in adapter.head.items()},
                   list(adapter.modules_to_save), adapter.dropout, {"method": "truncated"})


def adapter_shape(adapter: Adapter, module: str) -> tuple[int, int]:
    """(out, in) of a module the adapter does not adapt: taken from adapter.info['shapes'] (set by the caller)."""
    shapes = adapter.info.get("shapes", {})
    if module not in shapes:
        raise ValueError(f"the global adapter does not adapt {module} and carries no shape for it")
    return tuple(shapes[module])
