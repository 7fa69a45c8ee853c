"""Aggregation of LoRA adapters of different ranks: stacking is exact, SVD is the optimal truncation, FedAvg is not."""

from __future__ import annotations

import numpy as np
import pytest

from ml.adapter import Adapter, from_tensors
from ml.aggregate import aggregate, factors_from_delta, sample_weights, truncate, weighted_delta
from ml.shards import label_counts, shard_indices

SHAPES = {"q": (12, 10), "v": (12, 10), "fc": (20, 10)}


def adapter(ranks: dict[str, int], seed: int, alpha_per_rank: float = 2.0) -> Adapter:
    rng = np.random.default_rng(seed)
    a = {m: rng.normal(size=(r, SHAPES[m][1])).astype(np.float32) for m, r in ranks.items() if r}
    b = {m: rng.normal(size=(SHAPES[m][0], r)).astype(np.float32) for m, r in ranks.items() if r}
    alphas = {m: alpha_per_rank * np.sqrt(r) for m, r in ranks.items() if r}  # rsLoRA-like: scaling differs by rank
    head = {"classifier.weight": rng.normal(size=(2, 10)).astype(np.float32),
            "classifier.bias": rng.normal(size=2).astype(np.float32)}
    return Adapter({m: r for m, r in ranks.items() if r}, alphas, a, b, head, ["classifier"])


CLIENTS = [adapter({"q": 2, "v": 4, "fc": 1}, 1), adapter({"q": 8, "v": 1, "fc": 0}, 2), adapter({"q": 4, "v": 4, "fc": 3}, 3)]
W = sample_weights([100, 300, 600])


def test_weights_sum_to_one() -> None:
    assert W.tolist() == pytest.approx([0.1, 0.3, 0.6])
    assert sample_weights([0, 0]).tolist() == [0.5, 0.5]


def test_stacking_is_exact_and_ranks_add() -> None:
    g = aggregate("stack", CLIENTS, W)
    for m in ("q", "v", "fc"):
        exact = weighted_delta(CLIENTS, W, m)
        assert np.abs(g.delta(m) - exact).max() < 1e-4 * np.abs(exact).max()
    assert g.ranks == {"q": 10, "v": 9, "fc": 4}  # q: 14 stacked rows, capped at min(12, 10)
    assert g.head["classifier.bias"] == pytest.approx(sum(w * c.head["classifier.bias"] for w, c in zip(W, CLIENTS)))


def test_stacking_beyond_the_matrix_rank_stays_exact() -> None:
    many = [adapter({"q": 8, "v": 8, "fc": 8}, s) for s in range(4)]  # 32 stacked rows > min(12, 10)
    g = aggregate("stack", many, sample_weights([1, 1, 1, 1]))
    assert g.ranks["q"] == 10
    exact = weighted_delta(many, sample_weights([1, 1, 1, 1]), "q")
    assert np.abs(g.delta("q") - exact).max() < 1e-4 * np.abs(exact).max()


def test_svd_is_the_optimal_truncation_and_beats_fedavg() -> None:
    g = aggregate("svd", CLIENTS, W)
    f = aggregate("fedavg", CLIENTS, W)
    assert g.ranks == {"q": 8, "v": 4, "fc": 3} == f.ranks
    for m in ("q", "v"):
        exact = weighted_delta(CLIENTS, W, m)
        s = np.linalg.svd(exact, compute_uv=False)
        r = g.ranks[m]
        err_svd = np.linalg.norm(g.delta(m) - exact)
        assert err_svd == pytest.approx(np.sqrt(np.sum(s[r:] ** 2)), rel=1e-4, abs=1e-5)  # Eckart-Young
        assert err_svd < np.linalg.norm(f.delta(m) - exact)  # FedAvg's cross terms cost accuracy
    # at full rank the SVD is exact too
    full = aggregate("svd", CLIENTS, W, ranks={"q": 10, "v": 10, "fc": 10})
    assert np.abs(full.delta("q") - weighted_delta(CLIENTS, W, "q")).max() < 1e-4


def test_fedavg_of_one_client_is_that_client() -> None:
    g = aggregate("fedavg", CLIENTS[:1], [1.0])
    for m in CLIENTS[0].ranks:
        assert np.abs(g.delta(m) - CLIENTS[0].delta(m)).max() < 1e-5


def test_truncate_starts_local_training_from_the_global() -> None:
    g = aggregate("svd", CLIENTS, W)
    local = truncate(g, {"q": 16, "v": 2, "fc": 0}, {"q": 0.5, "v": 2.0}, seed=1)
    assert local.ranks == {"q": 16, "v": 2}
    assert local.alphas == {"q": 8.0, "v": 4.0}
    assert np.abs(local.delta("q") - g.delta("q")).max() < 1e-4  # rank 16 >= the global's 8: exact
    assert np.abs(local.lora_a["q"][8:]).min() > 0  # directions the global lacks start LoRA-like, not at zero
    assert not local.lora_b["q"][:, 8:].any()
    u, s, vt = np.linalg.svd(g.delta("v"))
    assert np.linalg.norm(local.delta("v") - g.delta("v")) == pytest.approx(np.sqrt(np.sum(s[2:] ** 2)), rel=1e-4)


def test_round_trip_through_peft_tensor_names() -> None:
    c = CLIENTS[0]
    spec = {m: {"r": r, "alpha": c.alphas[m]} for m, r in c.ranks.items()}
    back = from_tensors(spec, c.tensors(), c.modules_to_save)
    assert back.ranks == c.ranks and sorted(back.head) == sorted(c.head)
    assert np.array_equal(back.lora_b["v"], c.lora_b["v"])


def test_factors_split_the_singular_values() -> None:
    d = np.random.default_rng(0).normal(size=(6, 5))
    a, b, s = factors_from_delta(d, 5, scaling=2.0)
    assert np.abs(2.0 * b @ a - d).max() < 1e-5


def test_unknown_method_and_mismatched_weights() -> None:
    with pytest.raises(ValueError, match="unknown aggregation 'mean'"):
        aggregate("mean", CLIENTS, W)
    with pytest.raises(ValueError, match="2 weights for 3 adapters"):
        aggregate("svd", CLIENTS, W[:2])


def test_iid_shards_are_disjoint_and_balanced() -> None:
    y = np.random.default_rng(0).integers(0, 2, 1000)
    shards = shard_indices(y, 4, "iid", seed=3)
    assert sorted(np.concatenate(shards).tolist()) == list(range(1000))
    assert [s.size for s in shards] == [250] * 4
    assert shard_indices(y, 4, "iid", seed=3)[0].tolist() == shards[0].tolist()  # seeded


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    y = np.repeat([0, 1, 2, 3], 250)

    def skew(alpha: float) -> float:  # mean over edges of the largest class share
        counts = label_counts(y, shard_indices(y, 4, "dirichlet", alpha=alpha, seed=1, min_examples=10), 4)
        return float(np.mean(counts.max(axis=1) / counts.sum(axis=1)))

    shards = shard_indices(y, 4, "dirichlet", alpha=0.1, seed=1, min_examples=10)
    assert sorted(np.concatenate(shards).tolist()) == list(range(1000))
    assert min(s.size for s in shards) >= 10
    assert skew(0.1) > 0.6 > skew(100.0)
    assert skew(100.0) < 0.4  # close to IID's 0.25


def test_shard_bounds() -> None:
    with pytest.raises(ValueError, match="cannot give 5 edges 1 each"):
        shard_indices([0, 1, 0], 5)
    with pytest.raises(ValueError, match="unknown shard scheme"):
        shard_indices([0, 1], 1, "pathological")


def test_balanced_dirichlet_skews_labels_not_sizes() -> None:
    y = np.repeat([0, 1], [600, 400])
    shards = shard_indices(y, 4, "dirichlet-balanced", alpha=1.0, seed=2)
    assert [s.size for s in shards] == [250] * 4
    assert sorted(np.concatenate(shards).tolist()) == list(range(1000))
    shares = label_counts(y, shards, 2)[:, 0] / 250
    assert shares.max() - shares.min() > 0.3  # the class mix differs from edge to edge
