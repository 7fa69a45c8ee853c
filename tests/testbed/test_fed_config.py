"""The `fed:` section: defaults from testbed.yaml, and one-line refusals that name the key."""

from __future__ import annotations

import pytest

from testbed.config import load
from testbed.errors import ConfigError


def test_defaults() -> None:
    f = load().fed
    assert (f.rounds, f.edges, f.aggregation, f.shards, f.dp.enabled) == (2, 2, "svd", "iid", False)
    assert f.shard_index is None and f.dp.delta == 1e-5
    assert (f.local_steps, f.eval_examples) == (50, 200)  # the default run learns (README's default-run table)


@pytest.mark.parametrize("override, message", [
    ("fed.aggregation=mean", "fed.aggregation: 'mean' is not allowed; allowed values: 'fedavg', 'stack' or 'svd'"),
    ("fed.shards=pathological", "fed.shards: 'pathological' is not allowed"),
    ("fed.dirichlet_alpha=0", "fed.dirichlet_alpha: 0 is out of range; it must be > 0"),
    ("fed.edges=65", "fed.edges: 65 is out of range; it must be <= 64"),
    ("fed.dp.clip_norm=-1", "fed.dp.clip_norm: -1 is out of range; it must be > 0"),
    ("fed.dp.delta=1", "fed.dp.delta: 1 is out of range; it must be < 1"),
    ("fed.shard_index=2", "fed.shard_index 2 must be below fed.edges 2"),
    ("fed.local_steps=0", "fed.local_steps: 0 is out of range; it must be >= 1"),
])
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(None, [override])
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1
