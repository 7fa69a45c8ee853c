"""Model identity: name + SHA-256 of the weight files, cached by path, size and mtime."""

import json
import os

from edge_node.payload_reader import early_refusal
from adapters import payload as pl
from adapters.identity import model_identity
from ml.tiny import make_tiny_model


def test_identity_is_stable_cached_and_changes_with_weights(tmp_path):
    a = make_tiny_model(tmp_path / "a" / "tiny", seed=0)
    b = make_tiny_model(tmp_path / "b" / "tiny", seed=0)
    c = make_tiny_model(tmp_path / "c" / "tiny", seed=1)
    cache = tmp_path / "cache"
    ia = model_identity(str(a), cache)
    assert ia == model_identity(str(b), cache)  # same weights in another folder: same identity
    assert ia["name"] == "tiny" and len(ia["sha256"]) == 64
    assert model_identity(str(c), cache)["sha256"] != ia["sha256"]
    entries = json.loads((cache / "weights_sha256.json").read_text())
    assert len(entries) == 3
    weights = a / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(1, 1))
    assert model_identity(str(a), cache)["sha256"] != ia["sha256"]


def test_embedded_minilm_identity():
    ident = model_identity("minilm-l6")
    assert ident["name"] == "minilm-l6" and len(ident["sha256"]) == 64


def test_early_refusal_from_the_manifest_alone():
    import numpy as np
    t = {"w": np.ones((4, 4), np.float32)}
    buf = pl.encode({"model": {"name": "m", "sha256": "aa", "task": "bbc_news"},
                     "probe": {"texts": [], "logits": []}}, t, {"w": "none"}, 64)
    man_len, _, _ = pl.read_header(buf)
    prefix = buf[: pl.HEADER_BYTES + man_len]
    assert early_refusal(prefix[:30], {"name": "m", "sha256": "aa"}) is None  # not enough yet
    assert early_refusal(prefix, {"name": "m", "sha256": "aa"}, "bbc_news") is None
    assert "foreign model" in early_refusal(prefix, {"name": "m", "sha256": "bb"})
    assert "foreign task" in early_refusal(prefix, {"name": "m", "sha256": "aa"}, "rotten_tomatoes")
