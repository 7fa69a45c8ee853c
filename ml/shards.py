"""Each edge's shard of the task's training data: IID, or label-skewed by a Dirichlet draw (seeded, torch-free).

`dirichlet` follows Hsu et al. 2019: for every class, shares p ~ Dir(alpha, ..., alpha) over the edges cut that
class's examples; a small alpha gives each edge few classes, a large one approaches IID; shard sizes differ (with
few classes, a lot). `dirichlet-balanced` skews labels but not sizes: every edge draws its class mix
q ~ Dir(alpha, ..., alpha) and takes len/edges examples by it (from the classes that still have some). Shards are
disjoint, cover the training split and are never empty (a `dirichlet` draw that leaves an edge under
min_examples is drawn again, up to MAX_DRAWS times, then the largest shards give it examples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCHEMES = ("iid", "dirichlet", "dirichlet-balanced")
MAX_DRAWS = 100


def shard_indices(labels: Sequence[int], edges: int, scheme: str = "iid", alpha: float = 0.5, seed: int = 0,
                  min_examples: int = 1) -> list[np.ndarray]:
    """Indices of each edge's examples (sorted), disjoint and covering range(len(labels))."""
    y = np.asarray(labels)
    n = y.size
    if edges < 1:
        raise ValueError(f"edges must be at least 1, got {edges}")
    if n < edges * min_examples:
        raise ValueError(f"{n} training examples cannot give {edges} edges {min_examples} each")
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), edges)]
    if scheme == "dirichlet-balanced":
        return _balanced(y, edges, alpha, rng)
    if scheme != "dirichlet":
        raise ValueError(f"unknown shard scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    if not alpha > 0:
        raise ValueError(f"the Dirichlet alpha must be > 0, got {alpha}")
    for _ in range(MAX_DRAWS):
        parts: list[list[int]] = [[] for _ in range(edges)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(edges, alpha))
            cuts = (np.cumsum(shares)[:-1] * idx.size).astype(int)
            for e, piece in enumerate(np.split(idx, cuts)):
                parts[e].extend(piece.tolist())
        if min(len(p) for p in parts) >= min_examples:
            break
    else:
        for p in parts:  # give the short shards examples from the largest ones
            while len(p) < min_examples:
                donor = max(parts, key=len)
                p.append(donor.pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _balanced(y: np.ndarray, edges: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    if not alpha > 0:
        raise ValueError(f"the Dirichlet alpha must be > 0, got {alpha}")
    classes = np.unique(y)
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in classes}
    sizes = [len(part) for part in np.array_split(np.arange(y.size), edges)]
    out = []
    for size in sizes:
        q = rng.dirichlet(np.full(classes.size, alpha))
        mine: list[int] = []
        for _ in range(size):
            left = np.array([len(pools[c]) for c in classes], float)
            p = q * (left > 0)
            p = p / p.sum() if p.sum() > 0 else left / left.sum()
            mine.append(int(pools[classes[rng.choice(classes.size, p=p)]].pop()))
        out.append(np.sort(np.asarray(mine, dtype=np.int64)))
    return out


def label_counts(labels: Sequence[int], shards: list[np.ndarray], num_labels: int) -> np.ndarray:
    """[edges, num_labels] examples per class per shard."""
    y = np.asarray(labels)
    return np.stack([np.bincount(y[s], minlength=num_labels) for s in shards])
