"""The payload format: exact sizes, round trip, and refusal of truncated, corrupted or hostile payloads."""

import hashlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import payload as pl
from adapters import quantize as q

MINILM_SHAPES = {**{f"l{i}.{k}": s for i in range(6) for k, s in
                    [("q", (384, 384)), ("k", (384, 384)), ("v", (384, 384)), ("o", (384, 384)),
                     ("i", (1536, 384)), ("out", (384, 1536))]}}


def _manifest():
    return {"model": {"name": "m", "sha256": "ab" * 32}, "probe": {"texts": ["a", "b"], "logits": [[0.1, 0.2], [0.3, 0.4]]}}


def _tensors(rank=8):
    rng = np.random.default_rng(0)
    out = {}
    for name, (o, i) in MINILM_SHAPES.items():
        out[f"{name}.lora_A.weight"] = (rng.standard_normal((rank, i)) * 0.02).astype(np.float32)
        out[f"{name}.lora_B.weight"] = (rng.standard_normal((o, rank)) * 0.02).astype(np.float32)
    return out


def _encode(tensors, scheme, block=64):
    return pl.encode(_manifest(), tensors, {k: scheme for k in tensors}, block)


def _rehash(buf: bytes) -> bytes:
    """Fix the SHA-256 after tampering, to reach the parser behind it (a hostile but careful sender)."""
    head = buf[:pl.HEADER.size]
    digest = hashlib.sha256(head + buf[pl.HEADER_BYTES:]).digest()
    return head + digest + buf[pl.HEADER_BYTES:]


def _with_manifest(buf: bytes, manifest: dict, body: bytes | None = None) -> bytes:
    man_len, body_len, _ = pl.read_header(buf)
    body = buf[pl.HEADER_BYTES + man_len:] if body is None else body
    man = json.dumps(manifest).encode()
    head = pl.HEADER.pack(pl.MAGIC, pl.VERSION, 0, len(man), len(body))
    return _rehash(head + b"\0" * 32 + man + body)


@pytest.mark.parametrize("scheme", q.SCHEMES)
def test_round_trip_and_exact_size(scheme):
    tensors = _tensors()
    buf = _encode(tensors, scheme)
    p = pl.decode(buf)
    man_len, body_len, _ = pl.read_header(buf)
    assert len(buf) == pl.total_size(buf) == pl.HEADER_BYTES + man_len + body_len
    assert body_len == sum(pl.tensor_nbytes(v.shape, scheme, 64) for v in tensors.values())
    assert p.sha256 == hashlib.sha256(buf[:20] + buf[52:]).hexdigest()
    for k, v in tensors.items():
        assert p.tensors[k].shape == v.shape
        if scheme == "none":
            assert np.array_equal(p.tensors[k], v)


def test_nf4_is_at_least_6x_smaller_than_fp32_for_minilm_rank8():
    tensors = _tensors(8)
    fp32, nf4 = len(_encode(tensors, "none")), len(_encode(tensors, "nf4"))
    assert sum(v.size for v in tensors.values()) == 8 * 41472
    assert fp32 / nf4 >= 6.0, (fp32, nf4)


def test_encoding_is_deterministic():
    t = _tensors(2)
    assert _encode(t, "nf4") == _encode(t, "nf4")


def test_truncated_anywhere_is_refused():
    buf = _encode(_tensors(1), "int8")
    for cut in [0, 3, 20, 51, 52, 60, len(buf) // 2, len(buf) - 1]:
        with pytest.raises(pl.PayloadError, match="truncated|size"):
            pl.decode(buf[:cut])
    with pytest.raises(pl.PayloadError, match="trailing"):
        pl.decode(buf + b"x")


def test_every_flipped_bit_is_refused():
    buf = _encode(_tensors(1), "nf4")
    rng = np.random.default_rng(3)
    positions = list(range(0, 80)) + list(rng.integers(80, len(buf), 200))
    for pos in positions:
        bad = bytearray(buf)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(pl.PayloadError):
            pl.decode(bytes(bad))


def test_header_limits():
    buf = _encode(_tensors(1), "fp16")
    huge = pl.HEADER.pack(pl.MAGIC, pl.VERSION, 0, 2**32 - 1, 2**63) + buf[20:]
    with pytest.raises(pl.PayloadError, match="outside|exceeds"):
        pl.decode(huge)
    with pytest.raises(pl.PayloadError, match="magic"):
        pl.decode(b"PK\x03\x04" + buf[4:])
    with pytest.raises(pl.PayloadError, match="version"):
        pl.decode(buf[:4] + struct.pack("<H", 9) + buf[6:])


@pytest.mark.parametrize("tamper", [
    lambda m: m["tensors"][0].update(shape=[10**12, 10**12]),
    lambda m: m["tensors"][0].update(shape=[-1, 4]),
    lambda m: m["tensors"][0].update(offset=5),
    lambda m: m["tensors"][0].update(data_nbytes=1),
    lambda m: m["tensors"][0].update(scheme="pickle"),
    lambda m: m["tensors"][0].update(name="../../etc/passwd"),
    lambda m: m["tensors"].append(dict(m["tensors"][0])),
    lambda m: m.update(block_size=0),
    lambda m: m.update(tensors=[]),
    lambda m: m.update(probe={"texts": ["a"], "logits": [[1.0], [2.0]]}),
    lambda m: m.pop("model"),
])
def test_hostile_manifest_with_valid_sha_is_refused(tamper):
    buf = _encode(_tensors(1), "int8")
    manifest = pl.read_manifest(buf)
    tamper(manifest)
    with pytest.raises(pl.PayloadError, match="bad manifest"):
        pl.decode(_with_manifest(buf, manifest))


def test_deeply_nested_or_non_json_manifest_is_refused():
    buf = _encode(_tensors(1), "int8")
    for man in [b"[" * 100000 + b"]" * 100000, b"\xff\xfe", b"not json", b"[1, 2]"]:
        head = pl.HEADER.pack(pl.MAGIC, pl.VERSION, 0, len(man), 0)
        with pytest.raises(pl.PayloadError):
            pl.decode(_rehash(head + b"\0" * 32 + man))


def test_read_manifest_works_on_a_prefix():
    buf = _encode(_tensors(1), "nf4")
    man_len, _, _ = pl.read_header(buf)
    assert pl.read_manifest(buf[: pl.HEADER_BYTES + man_len])["model"]["name"] == "m"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzzed_payloads_with_valid_sha_only_ever_raise_payload_error(data):
    """A hostile sender that fixes the hash can make parsing fail, never crash it or allocate without bound."""
    buf = bytearray(_encode(_tensors(1), data.draw(st.sampled_from(q.SCHEMES))))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(pl.HEADER_BYTES, len(buf)))
    try:
        p = pl.decode(_rehash(bytes(buf[:cut])))
    except pl.PayloadError:
        return
    assert sum(v.nbytes for v in p.tensors.values()) <= 8 * len(buf)
