"""Fixtures: tiny random-init models saved as local folders and a config that trains them in seconds."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    from host.tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-bert", "bert")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    from host.tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama")


@pytest.fixture
def tiny_cfg(tiny_bert, tmp_path):
    """A TestbedConfig on the tiny BERT and a small BBC News split; the edge installs under tmp_path."""
    from testbed.config import validate
    return validate({
        "model": {"name": str(tiny_bert), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 96, "val_size": 0, "test_size": 40, "probe_count": 3},
        "finetune": {"ranks": "uniform:4", "steps": 8, "batch_size": 8, "lr": 5e-3, "quant": "nf4"},
        "edge": {"adapter_dir": str(tmp_path / "edge")},
    })
