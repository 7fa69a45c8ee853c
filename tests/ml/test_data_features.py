"""Tasks, deterministic splits and the linguistic features."""

import math

import pytest

from ml.data import load_task
from ml.features import batch_features, lexical_entropy, oov_rate, vocabulary
from testbed.sections.adapter import DataConfig


def test_rotten_tomatoes_splits_are_deterministic_and_disjoint():
    cfg = DataConfig(task="rotten_tomatoes", train_size=300, val_size=50, test_size=100, seed=7)
    a, b = load_task(cfg), load_task(cfg)
    assert a == b
    assert a.labels == ["rotten", "fresh"]
    assert (len(a.train), len(a.val), len(a.test)) == (300, 50, 100)
    texts = [t for t, _ in a.train] + [t for t, _ in a.val] + [t for t, _ in a.test]
    assert len(set(texts)) >= len(texts) - 2  # a few critics repeat a snippet
    assert 0.3 < sum(y for _, y in a.test) / 100 < 0.8
    other = load_task(cfg.model_copy(update={"seed": 8}))
    assert other.test != a.test


def test_bbc_news_has_five_classes():
    s = load_task(DataConfig(task="bbc_news", train_size=100, val_size=0, test_size=50))
    assert s.num_labels == 5 and {y for _, y in s.train} == set(range(5))


def test_too_large_splits_are_refused():
    from testbed.errors import AirLoraError
    with pytest.raises(AirLoraError, match="examples"):
        load_task(DataConfig(task="bbc_news", train_size=10000))


def test_lexical_entropy_is_normalized():
    assert lexical_entropy(["a b c d"]) == pytest.approx(1.0)
    assert lexical_entropy(["a a a a"]) == 0.0
    h = lexical_entropy(["a a a b"])
    assert h == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))


def test_oov_rate_is_word_level_against_training_vocabulary():
    vocab = vocabulary(["The movie was great", "a dull plot"])
    assert oov_rate(["the movie was dull"], vocab) == 0.0
    assert oov_rate(["the film was brilliant"], vocab) == pytest.approx(0.5)
    f = batch_features(["zzz qqq"], vocab)
    assert f["oov_rate"] == 1.0 and 0.0 <= f["lexical_entropy"] <= 1.0


def test_oov_of_real_test_split_is_between_0_and_1():
    s = load_task(DataConfig(task="rotten_tomatoes", train_size=500, val_size=0, test_size=200))
    f = batch_features([t for t, _ in s.test], vocabulary(t for t, _ in s.train))
    assert 0.02 < f["oov_rate"] < 0.5 and 0.5 < f["lexical_entropy"] < 1.0
