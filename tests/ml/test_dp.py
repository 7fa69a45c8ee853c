"""DP aggregation: clipping bounds each edge's influence, the noise has the std the accountant assumes, epsilon
comes from dp-accounting and matches the Gaussian mechanism's known values."""

from __future__ import annotations

import numpy as np
import pytest

from ml.adapter import Adapter
from ml.aggregate import aggregate, sample_weights, weighted_delta
from ml.dp import epsilon, noise_for_epsilon, norm, private_aggregate, updates

SHAPES = {"q": (16, 12), "v": (16, 12)}


def client(seed: int, scale: float = 1.0) -> Adapter:
    rng = np.random.default_rng(seed)
    a = {m: rng.normal(size=(4, s[1])).astype(np.float32) for m, s in SHAPES.items()}
    b = {m: (scale * rng.normal(size=(s[0], 4))).astype(np.float32) for m, s in SHAPES.items()}
    head = {"classifier.weight": rng.normal(size=(2, 12)).astype(np.float32)}
    return Adapter({m: 4 for m in SHAPES}, {m: 4.0 for m in SHAPES}, a, b, head, ["classifier"])


BASE = Adapter({}, {}, {}, {}, {"classifier.weight": np.zeros((2, 12), np.float32)}, ["classifier"])


def test_without_noise_and_clipping_it_is_the_svd_mean() -> None:
    clients = [client(1), client(2)]
    g, stats = private_aggregate(BASE, clients, SHAPES, {"q": 12, "v": 12}, clip_norm=1e9, noise_multiplier=0.0,
                                 rng=np.random.default_rng(0))
    exact = weighted_delta(clients, sample_weights([1, 1]), "q")
    assert np.abs(g.delta("q") - exact).max() < 1e-4
    assert stats.clipped == 0 and stats.noise_std == 0.0
    svd = aggregate("svd", clients, [0.5, 0.5], ranks={"q": 12, "v": 12})
    assert np.abs(g.delta("v") - svd.delta("v")).max() < 1e-4


def test_clipping_bounds_one_edges_influence() -> None:
    big = client(3, scale=1000.0)
    g, stats = private_aggregate(BASE, [big], SHAPES, {"q": 12, "v": 12}, clip_norm=2.0, noise_multiplier=0.0,
                                 rng=np.random.default_rng(0))
    assert stats.clipped == 1 and stats.norms[0] > 1000
    assert norm(updates(BASE, [g], SHAPES)[0]) == pytest.approx(2.0, rel=1e-3)


def test_noise_std_is_z_clip_over_n() -> None:
    zero = Adapter({m: 4 for m in SHAPES}, {m: 4.0 for m in SHAPES},
                   {m: np.zeros((4, 12), np.float32) for m in SHAPES}, {m: np.zeros((16, 4), np.float32) for m in SHAPES},
                   {"classifier.weight": np.zeros((2, 12), np.float32)}, ["classifier"])
    g, stats = private_aggregate(BASE, [zero] * 4, SHAPES, {"q": 12, "v": 12}, clip_norm=3.0, noise_multiplier=2.0,
                                 rng=np.random.default_rng(5))
    assert stats.noise_std == pytest.approx(2.0 * 3.0 / 4)
    samples = np.concatenate([g.delta("q").ravel(), g.delta("v").ravel(), g.head["classifier.weight"].ravel()])
    assert np.std(samples) == pytest.approx(1.5, rel=0.1)  # full rank: the SVD keeps all the noise


def test_epsilon_from_the_accountant() -> None:
    assert epsilon(1.0, 0, 1e-5) == 0.0
    assert epsilon(0.0, 3, 1e-5) == float("inf")
    e1, e5 = epsilon(1.5, 1, 1e-5), epsilon(1.5, 5, 1e-5)
    assert 2.0 < e1 < e5 < 9.0  # composition spends more; 5 rounds at z=1.5 is about 7.5
    assert e5 == pytest.approx(7.53, abs=0.05)
    z = noise_for_epsilon(8.0, 5, 1e-5)
    assert epsilon(z, 5, 1e-5) == pytest.approx(8.0, abs=0.05)
    assert 1.2 < z < 1.5


def test_updates_are_measured_from_where_each_edge_started() -> None:
    from ml.aggregate import truncate

    glob = client(7)
    start = truncate(glob, {"q": 2, "v": 2}, {"q": 1.0, "v": 1.0})  # an edge at rank 2 starts from the truncation
    same = Adapter(start.ranks, start.alphas, start.lora_a, start.lora_b, glob.head, ["classifier"])
    g, stats = private_aggregate(glob, [same], SHAPES, {"q": 4, "v": 4}, clip_norm=0.1, noise_multiplier=0.0,
                                 rng=np.random.default_rng(0), starts=[start])
    assert stats.norms == [pytest.approx(0.0, abs=1e-4)] and stats.clipped == 0  # no training: no update
    assert np.abs(g.delta("q") - glob.delta("q")).max() < 1e-4  # the global stays the global
    _, against_global = private_aggregate(glob, [same], SHAPES, {"q": 4, "v": 4}, clip_norm=0.1, noise_multiplier=0.0,
                                          rng=np.random.default_rng(0))
    assert against_global.norms[0] > 1.0  # measured from the global, the truncation residual would count
