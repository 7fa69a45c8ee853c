"""The payload format: exact sizes, round trip, and refusal of truncated, corrupted or hostile payloads."""

import hashlib
import json
import struct
import tracemalloc
import zlib

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


def _encode(tensors, scheme, block=64, double_quant=True):
    return pl.encode(_manifest(), tensors, {k: scheme for k in tensors}, block, double_quant)


def _rehash(buf: bytes) -> bytes:
    """Fix the SHA-256 after tampering, to reach the parser behind it (a hostile but careful sender)."""
    head = buf[:pl.HEADER.size]
    digest = hashlib.sha256(head + buf[pl.HEADER_BYTES:]).digest()
    return head + digest + buf[pl.HEADER_BYTES:]


def _with_manifest(buf: bytes, manifest: dict | None = None, body: bytes | None = None, raw: bytes | None = None,
                   flags: int | None = None) -> bytes:
    """The payload with another manifest (compressed like the original's) or raw manifest bytes, re-hashed."""
    h = pl.parse_header(buf)
    body = buf[pl.HEADER_BYTES + h.manifest_len:] if body is None else body
    if raw is None:
        raw = json.dumps(manifest).encode()
        raw = zlib.compress(raw) if h.flags & pl.FLAG_ZLIB else raw
    head = pl.HEADER.pack(pl.MAGIC, h.version, h.flags if flags is None else flags, len(raw), len(body))
    return _rehash(head + b"\0" * 32 + raw + body)


@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("scheme", q.SCHEMES)
def test_round_trip_and_exact_size(scheme, double_quant):
    tensors = _tensors()
    buf = _encode(tensors, scheme, double_quant=double_quant)
    p = pl.decode(buf)
    h = pl.parse_header(buf)
    assert (h.version, h.flags, p.version) == ((2, pl.FLAG_ZLIB, 2) if double_quant else (1, 0, 1))
    assert len(buf) == pl.total_size(buf) == pl.HEADER_BYTES + h.manifest_len + h.body_len
    assert h.body_len == sum(pl.tensor_nbytes(v.shape, scheme, 64, double_quant) for v in tensors.values())
    assert p.sha256 == hashlib.sha256(buf[:20] + buf[52:]).hexdigest()
    for k, v in tensors.items():
        assert p.tensors[k].shape == v.shape
        if scheme == "none":
            assert np.array_equal(p.tensors[k], v)


def test_nf4_is_at_least_7_5x_smaller_than_fp32_for_minilm_rank8():
    tensors = _tensors(8)
    fp32, nf4 = len(_encode(tensors, "none")), len(_encode(tensors, "nf4"))
    assert sum(v.size for v in tensors.values()) == 8 * 41472
    assert fp32 / nf4 >= 7.5, (fp32, nf4)
    assert fp32 / len(_encode(tensors, "nf4", double_quant=False)) < 7.1  # format 1: fp32 scales


def test_format_1_manifest_lists_offsets_and_format_2_derives_them():
    tensors = _tensors(1)
    v1, v2 = pl.read_manifest(_encode(tensors, "nf4", double_quant=False)), pl.read_manifest(_encode(tensors, "nf4"))
    assert v1["version"] == 1 and {"offset", "data_nbytes", "scales_nbytes"} <= set(v1["tensors"][0])
    assert v2["version"] == 2 and set(v2["tensors"][0]) == {"name", "shape", "scheme"}
    assert [t["name"] for t in v1["tensors"]] == [t["name"] for t in v2["tensors"]]


def test_encoding_is_deterministic():
    t = _tensors(2)
    assert _encode(t, "nf4") == _encode(t, "nf4")


@pytest.mark.parametrize("double_quant", [True, False])
def test_truncated_anywhere_is_refused(double_quant):
    buf = _encode(_tensors(1), "int8", double_quant=double_quant)
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


@pytest.mark.parametrize("version", [0, 3, 9, 65535])
def test_unknown_versions_are_refused_in_one_line(version):
    buf = _encode(_tensors(1), "nf4")
    forged = buf[:4] + struct.pack("<H", version) + buf[6:]
    for bad in (forged, _rehash(forged)):
        with pytest.raises(pl.PayloadError, match=f"unsupported payload format version {version} "
                                                  r"\(this edge reads versions 1, 2\)") as exc:
            pl.decode(bad)
        assert "\n" not in str(exc.value)


def test_flags_are_checked_per_version():
    v1, v2 = _encode(_tensors(1), "nf4", double_quant=False), _encode(_tensors(1), "nf4")
    with pytest.raises(pl.PayloadError, match="unsupported payload flags 0x1 for format version 1"):
        pl.read_manifest(_with_manifest(v1, raw=zlib.compress(v1[52:52 + pl.read_header(v1)[0]]), flags=1))
    with pytest.raises(pl.PayloadError, match="unsupported payload flags 0x3 for format version 2"):
        pl.read_manifest(_with_manifest(v2, pl.read_manifest(v2), flags=3))
    # format 2 may also carry a plain manifest (flag bit 0 clear)
    plain = _with_manifest(v2, raw=json.dumps(pl.read_manifest(v2)).encode(), flags=0)
    assert pl.decode(plain).manifest == pl.decode(v2).manifest


def test_version_1_payloads_still_decode_to_the_same_tensors():
    tensors = _tensors(2)
    v1 = pl.decode(_encode(tensors, "nf4", double_quant=False))
    v2 = pl.decode(_encode(tensors, "nf4"))
    assert v1.version == 1 and v2.version == 2 and set(v1.tensors) == set(v2.tensors) == set(tensors)
    for k, v in tensors.items():
        # both within the scheme's bound at the block's scale (double quant adds the scale's own small error)
        for p in (v1, v2):
            assert np.abs(p.tensors[k] - v).max() <= 0.16 * np.abs(v).max() * 1.01


def test_manifest_version_must_match_the_header():
    for dq, other in ((True, 1), (False, 2)):
        buf = _encode(_tensors(1), "nf4", double_quant=dq)
        manifest = pl.read_manifest(buf)
        manifest["version"] = other
        with pytest.raises(pl.PayloadError, match="bad manifest: version .* differs from the header"):
            pl.decode(_with_manifest(buf, manifest))


TAMPERS = [
    lambda m: m["tensors"][0].update(shape=[10**12, 10**12]),
    lambda m: m["tensors"][0].update(shape=[-1, 4]),
    lambda m: m["tensors"][0].update(shape=[1, 385]),
    lambda m: m["tensors"][0].update(scheme="pickle"),
    lambda m: m["tensors"][0].update(scheme="fp16"),
    lambda m: m["tensors"][0].update(name="../../etc/passwd"),
    lambda m: m["tensors"].append(dict(m["tensors"][0])),
    lambda m: m["tensors"].pop(),
    lambda m: m.update(block_size=0),
    lambda m: m.update(block_size=128),
    lambda m: m.update(tensors=[]),
    lambda m: m.update(tensors={"a": 1}),
    lambda m: m.update(format="other"),
    lambda m: m.update(probe={"texts": ["a"], "logits": [[1.0], [2.0]]}),
    lambda m: m.pop("model"),
]
V1_TAMPERS = [lambda m: m["tensors"][0].update(offset=5), lambda m: m["tensors"][0].update(data_nbytes=1),
              lambda m: m["tensors"][1].pop("scales_nbytes")]


@pytest.mark.parametrize("double_quant, tamper",
                         [(True, t) for t in TAMPERS] + [(False, t) for t in TAMPERS + V1_TAMPERS])
def test_hostile_manifest_with_valid_sha_is_refused(double_quant, tamper):
    buf = _encode(_tensors(1), "int8", double_quant=double_quant)
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


@pytest.mark.parametrize("double_quant", [True, False])
def test_read_manifest_works_on_a_prefix(double_quant):
    buf = _encode(_tensors(1), "nf4", double_quant=double_quant)
    man_len, _, _ = pl.read_header(buf)
    assert pl.read_manifest(buf[: pl.HEADER_BYTES + man_len])["model"]["name"] == "m"
    for cut in (pl.HEADER_BYTES, pl.HEADER_BYTES + man_len // 2, pl.HEADER_BYTES + man_len - 1):
        with pytest.raises(pl.PayloadError, match="^payload is truncated"):  # what early_refusal waits on
            pl.read_manifest(buf[:cut])


# --- the compressed manifest: bounded inflating, one-line refusals ---------------------------------------------

def _bomb(inflated_bytes: int) -> bytes:
    """A zlib stream of `inflated_bytes` spaces after a JSON opening (compresses ~1000:1)."""
    c = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    parts = [c.compress(b'{"format": "airlora-adapter"')]
    parts += [c.compress(chunk) for _ in range(inflated_bytes >> 20)]
    return b"".join(parts) + c.compress(b"}") + c.flush()


def test_manifest_that_inflates_past_the_limit_is_refused_without_allocating_it():
    buf = _encode(_tensors(1), "nf4")
    bomb = _bomb(256 << 20)  # 256 MiB of JSON whitespace from ~250 kB
    assert len(bomb) < pl.MAX_MANIFEST_BYTES // 16
    tracemalloc.start()
    try:
        with pytest.raises(pl.PayloadError, match=f"inflates beyond the limit of {pl.MAX_MANIFEST_BYTES} bytes"):
            pl.decode(_with_manifest(buf, raw=bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * pl.MAX_MANIFEST_BYTES, peak  # far below the 256 MiB the stream would inflate to


def test_manifest_at_the_limit_inflates():
    raw = _bomb(pl.MAX_MANIFEST_BYTES - (1 << 20))
    assert len(pl._inflate(raw)) < pl.MAX_MANIFEST_BYTES


@pytest.mark.parametrize("damage, why", [
    (lambda z: z[: len(z) // 2], "cut short"),
    (lambda z: z[:-1], "cut short|not a valid zlib"),
    (lambda z: z + b"extra", "5 bytes after the end of its zlib stream"),
    (lambda z: b"\x78\x9c" + bytes(b ^ 0x55 for b in z[2:]), "not a valid zlib stream|cut short|JSON|bad manifest"),
    (lambda z: z[:2] + b"\xff" * (len(z) - 2), "not a valid zlib stream|cut short"),
    (lambda z: zlib.compress(b'{"format": "airlora-adapter", "version": 2'), "not valid JSON"),
    (lambda z: zlib.compress(b"\xff\xfe"), "not valid JSON"),
    (lambda z: zlib.compress(b"[" * 100000 + b"]" * 100000), "not valid JSON|bad manifest"),
    (lambda z: b"{}", "not a valid zlib stream"),
])
def test_damaged_compressed_manifest_is_refused_in_one_line(damage, why):
    buf = _encode(_tensors(1), "nf4")
    man_len = pl.read_header(buf)[0]
    bad = _with_manifest(buf, raw=damage(buf[pl.HEADER_BYTES:pl.HEADER_BYTES + man_len]))
    with pytest.raises(pl.PayloadError, match=why) as exc:
        pl.decode(bad)
    assert "\n" not in str(exc.value)


def test_compressed_manifest_is_small():
    """A tensor entry is name, shape and scheme only, and the manifest travels compressed."""
    tensors = _tensors(2)
    v1, v2 = _encode(tensors, "nf4", double_quant=False), _encode(tensors, "nf4")
    assert pl.read_header(v2)[0] * 5 < pl.read_header(v1)[0]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzzed_payloads_with_valid_sha_only_ever_raise_payload_error(data):
    """A hostile sender that fixes the hash can make parsing fail, never crash it or allocate without bound."""
    buf = bytearray(_encode(_tensors(1), data.draw(st.sampled_from(q.SCHEMES)), double_quant=data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(pl.HEADER_BYTES, len(buf)))
    try:
        p = pl.decode(_rehash(bytes(buf[:cut])))
    except pl.PayloadError:
        return
    assert sum(v.nbytes for v in p.tensors.values()) <= 8 * len(buf)
