"""What a payload may ask of the edge, checked on its manifest before anything is dequantized or built (issue 11).

Every payload here is signed with a key the edge trusts: the checks hold against a careless or compromised
host too, not only against strangers (whose payloads never get past the signature). Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import payload as pl
from adapters.signing import TrustStore, public_key, sign
from edge_node.payload_reader import check_payload
from edge_node.verify import RefusedError, model_settings
from testbed.sections.adapter import ModelConfig

IDENTITY = {"name": "m", "sha256": "ab" * 32}
SECRET = os.urandom(32)
TRUST = TrustStore.from_public_keys({"host": public_key(SECRET)}, "trusted/")


def _tensors(rows: int = 4, cols: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"base_model.model.l.q.lora_A.weight": rng.standard_normal((rows, cols)).astype(np.float32),
            "base_model.model.l.q.lora_B.weight": rng.standard_normal((cols, rows)).astype(np.float32)}


def _payload(scheme: str = "int8", rows: int = 4, cols: int = 64, **model) -> bytes:
    manifest = {"model": {**IDENTITY, "num_labels": 2, "max_length": 32, **model},
                "probe": {"texts": ["a"], "logits": [[0.1, 0.2]]}}
    tensors = _tensors(rows, cols)
    return pl.encode(manifest, tensors, {k: scheme for k in tensors}, 64)


def _with_manifest(buf: bytes, manifest: dict) -> bytes:
    """The payload with another (compressed) manifest and a fixed SHA-256: a careful sender's tampering."""
    h = pl.parse_header(buf)
    body = buf[pl.HEADER_BYTES + h.manifest_len:]
    raw = zlib.compress(json.dumps(manifest).encode())
    head = pl.HEADER.pack(pl.MAGIC, h.version, h.flags, len(raw), len(body))
    return head + hashlib.sha256(head + raw + body).digest() + raw + body


def _check(buf: bytes, **limits) -> pl.Payload:
    return check_payload(sign(buf, SECRET), IDENTITY, trust=TRUST, **limits)


@pytest.mark.parametrize("field, value, why", [
    ("num_labels", 3_000_000, r"num_labels '3000000' is not an integer in 1\.\.1024 \(edge.max_num_labels\)"),
    ("num_labels", 0, "num_labels '0' is not an integer"),
    ("num_labels", 2.0, "num_labels '2.0' is not an integer"),
    ("num_labels", True, "num_labels 'True' is not an integer"),
    ("num_labels", None, "num_labels 'None' is not an integer"),
    ("max_length", 10**9, r"max_length '1000000000' is not an integer in 8\.\.4096"),
    ("max_length", "64", "max_length '64' is not an integer"),
    ("max_length", 4, "max_length '4' is not an integer in 8..4096"),
    ("max_length", -1, "max_length '-1' is not an integer"),
])
def test_model_settings_out_of_bounds_are_refused_before_decoding(field, value, why):
    buf = _payload(**{field: value})
    with pytest.raises(RefusedError, match=why) as err:
        _check(buf)
    assert "\n" not in str(err.value)


def test_model_settings_are_validated_not_copied_in():
    cfg, labels = model_settings({"model": {"num_labels": 5, "max_length": 128}, "probe": {"logits": [[0.0] * 5]}},
                                 ModelConfig(max_length=64), 1024)
    assert (cfg.max_length, labels) == (128, 5) and type(cfg) is ModelConfig
    cfg, _ = model_settings({"model": {"num_labels": 2}, "probe": {"logits": []}}, ModelConfig(max_length=48), 8)
    assert cfg.max_length == 48  # absent: the edge's own
    with pytest.raises(RefusedError, match=r"probe logits have \[3\] columns but num_labels is 2"):
        model_settings({"model": {"num_labels": 2}, "probe": {"logits": [[0.0] * 3]}}, ModelConfig(), 1024)
    with pytest.raises(RefusedError, match=r"in 1\.\.4 \(edge.max_num_labels\)"):
        model_settings({"model": {"num_labels": 5}, "probe": {"logits": []}}, ModelConfig(), 4)


def test_more_values_than_the_limit_are_refused_before_anything_is_dequantized():
    rows, cols = 64, 32768  # 4M values in all: 16 MiB once dequantized, from a 4 MiB int8 payload
    buf = _payload("int8", rows, cols)
    signed = sign(buf, SECRET)
    tracemalloc.start()
    try:
        with pytest.raises(pl.PayloadError, match="more than 1000000 values in all"):
            check_payload(signed, IDENTITY, trust=TRUST, max_elements=1_000_000)
        _, refused_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decoded = check_payload(signed, IDENTITY, trust=TRUST, max_elements=1 << 23)
        _, decode_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    values = 2 * rows * cols
    assert sum(t.size for t in decoded.tensors.values()) == values
    assert refused_peak < 1.5 * len(buf)  # the signature check's copy of the payload, nothing per value
    # decoding: the fp32 result (4 bytes a value) and the payload's copies, no per-value temporaries beyond
    assert decode_peak < 4 * values + 3 * len(buf) + (1 << 20), decode_peak / values


def test_nf4_dequantizes_with_one_byte_per_value_beside_the_result():
    from adapters import quantize as q

    x = np.random.default_rng(1).standard_normal(1 << 18).astype(np.float32)
    packed = q.quantize(x, "nf4", 64)
    tracemalloc.start()
    try:
        out = q.dequantize(packed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == x.shape and peak < 5.5 * x.size + (64 << 10), peak / x.size  # was ~17 bytes a value


_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
                     | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_signed_manifests_only_ever_raise_payload_error_within_the_limits(data):
    """A host whose key the edge trusts sends nonsense: the edge refuses it in one line, never crashes, and never
    holds more than the configured number of values."""
    buf = _payload(data.draw(st.sampled_from(["none", "fp16", "int8", "nf4", "fp4"])))
    manifest = pl.read_manifest(buf)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.sampled_from(["model", "tensor", "probe", "top"]))
        key = data.draw(st.sampled_from(["num_labels", "max_length", "shape", "scheme", "name", "logits", "texts",
                                         "block_size", "sha256"]))
        value = data.draw(_json)
        if where == "model":
            manifest["model"][key] = value
        elif where == "tensor":
            manifest["tensors"][data.draw(st.integers(0, 1))][key] = value
        elif where == "probe":
            manifest["probe"][key] = value
        else:
            manifest[key] = value
    limit = 4096
    tracemalloc.start()
    try:
        try:
            p = _check(_with_manifest(buf, manifest), max_elements=limit, max_num_labels=16)
        except pl.PayloadError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 2000
            p = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if p is not None:
        assert sum(t.size for t in p.tensors.values()) <= limit
    assert peak < 8 * limit + 4 * len(buf) + (1 << 20)
