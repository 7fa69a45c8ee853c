"""The adapter payload: a fixed header, a JSON manifest, then packed tensors. No pickle; bounded parsing.

Layout (little-endian):
    0   4s  magic b"ALRP"
    4   H   format version (1)
    6   H   flags (0)
    8   I   manifest length in bytes
    12  Q   body length in bytes
    20  32s SHA-256 of everything else in the payload (bytes 0-19, the manifest and the body)
    52  manifest (UTF-8 JSON object), then the body (tensor data and scales at the offsets the manifest gives)

The header gives the exact total size, so a receiver knows when it has everything, and the manifest comes
first, so a receiver can refuse a foreign model before the body arrives. Torch-free: the edge's radio path
parses payloads without torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters import quantize as q
from testbed.errors import AirLoraError

MAGIC = b"ALRP"
VERSION = 1
HEADER = struct.Struct("<4sHHIQ")
HEADER_BYTES = HEADER.size + 32
MAX_MANIFEST_BYTES = 8 << 20
MAX_BODY_BYTES = 4 << 30
MAX_TENSORS = 65536
MAX_DIMS = 8
MAX_NUMEL = 1 << 31
NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,512}$")


class PayloadError(AirLoraError):
    """A payload that cannot be accepted; the message says why."""


@dataclass
class Payload:
    """A decoded payload: the manifest and fp32 tensors by name."""

    manifest: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    sha256: str = ""
    size_bytes: int = 0


def tensor_nbytes(shape: tuple[int, ...], scheme: str, block_size: int) -> int:
    """Exact body bytes of one tensor (data plus scales)."""
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return q.data_nbytes(scheme, numel, block_size) + q.scales_nbytes(scheme, numel, block_size)


def encode(manifest: dict[str, Any], tensors: dict[str, np.ndarray], schemes: dict[str, str],
           block_size: int) -> bytes:
    """Quantize (verified round trip), pack and hash; `schemes` gives each tensor's scheme."""
    entries, chunks, offset = [], [], 0
    for name in sorted(tensors):
        if not NAME_RE.match(name):
            raise PayloadError(f"tensor name {name!r} is not allowed")
        packed = q.quantize_verified(np.asarray(tensors[name], np.float32), schemes[name], block_size)
        entries.append({"name": name, "shape": list(packed.shape), "scheme": packed.scheme,
                        "offset": offset, "data_nbytes": len(packed.data), "scales_nbytes": len(packed.scales)})
        chunks += [packed.data, packed.scales]
        offset += len(packed.data) + len(packed.scales)
    full = dict(manifest, format="airlora-adapter", version=VERSION, block_size=block_size, tensors=entries)
    man = json.dumps(full, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    body = b"".join(chunks)
    if len(man) > MAX_MANIFEST_BYTES or len(body) > MAX_BODY_BYTES:
        raise PayloadError("payload exceeds the format's size limits")
    head = HEADER.pack(MAGIC, VERSION, 0, len(man), len(body))
    digest = hashlib.sha256(head + man + body).digest()
    return head + digest + man + body


def read_header(buf: bytes) -> tuple[int, int, bytes]:
    """(manifest length, body length, sha256) from the first 52 bytes, with every field checked."""
    if len(buf) < HEADER_BYTES:
        raise PayloadError(f"payload is truncated: {len(buf)} bytes, the header alone needs {HEADER_BYTES}")
    magic, version, flags, man_len, body_len = HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise PayloadError("not an adapter payload (bad magic bytes)")
    if version != VERSION:
        raise PayloadError(f"unsupported payload format version {version} (this edge reads {VERSION})")
    if flags != 0:
        raise PayloadError(f"unsupported payload flags {flags:#x}")
    if man_len == 0 or man_len > MAX_MANIFEST_BYTES:
        raise PayloadError(f"manifest length {man_len} is outside 1..{MAX_MANIFEST_BYTES}")
    if body_len > MAX_BODY_BYTES:
        raise PayloadError(f"body length {body_len} exceeds the limit {MAX_BODY_BYTES}")
    return man_len, body_len, bytes(buf[HEADER.size:HEADER_BYTES])


def total_size(buf: bytes) -> int:
    """The exact payload size the header announces."""
    man_len, body_len, _ = read_header(buf)
    return HEADER_BYTES + man_len + body_len


def read_manifest(buf: bytes) -> dict[str, Any]:
    """The manifest, parsed and checked, from a prefix of the payload (the body may still be missing).

    Not yet covered by the SHA-256 check: use it to refuse early, never to accept.
    """
    man_len, body_len, _ = read_header(buf)
    if len(buf) < HEADER_BYTES + man_len:
        raise PayloadError(f"payload is truncated: the manifest needs {HEADER_BYTES + man_len} bytes, got {len(buf)}")
    raw = bytes(buf[HEADER_BYTES:HEADER_BYTES + man_len])
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"manifest is not valid JSON ({type(exc).__name__})") from None
    _check_manifest(manifest, body_len)
    return manifest


def decode(buf: bytes) -> Payload:
    """Check size, SHA-256 and manifest, then dequantize every tensor; raise PayloadError on any problem."""
    man_len, body_len, digest = read_header(buf)
    expected = HEADER_BYTES + man_len + body_len
    if len(buf) < expected:
        raise PayloadError(f"payload is truncated: the header announces {expected} bytes, got {len(buf)}")
    if len(buf) > expected:
        raise PayloadError(f"payload has {len(buf) - expected} trailing bytes after the announced {expected}")
    view = memoryview(buf)
    actual = hashlib.sha256(view[:HEADER.size]).copy()
    actual.update(view[HEADER_BYTES:])
    if actual.digest() != digest:
        raise PayloadError("SHA-256 mismatch: the payload was corrupted in transit")
    manifest = read_manifest(buf)
    body = view[HEADER_BYTES + man_len:]
    tensors = {}
    for t in manifest["tensors"]:
        start, nd, ns = t["offset"], t["data_nbytes"], t["scales_nbytes"]
        packed = q.Packed(t["scheme"], tuple(t["shape"]), manifest["block_size"],
                          bytes(body[start:start + nd]), bytes(body[start + nd:start + nd + ns]))
        try:
            tensors[t["name"]] = q.dequantize(packed)
        except ValueError as exc:
            raise PayloadError(f"tensor {t['name']}: {exc}") from None
    return Payload(manifest, tensors, digest.hex(), expected)


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise PayloadError(f"bad manifest: {why}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_manifest(m: Any, body_len: int) -> None:
    """Every field the edge uses, checked against types, sane limits and the body length."""
    _need(isinstance(m, dict), "not a JSON object")
    _need(m.get("format") == "airlora-adapter" and m.get("version") == VERSION, "wrong format or version")
    bs = m.get("block_size")
    _need(_is_int(bs) and 16 <= bs <= 4096, "block_size must be an integer in 16..4096")
    model = m.get("model")
    _need(isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("sha256"), str),
          "model identity (name, sha256) missing")
    tensors = m.get("tensors")
    _need(isinstance(tensors, list) and 0 < len(tensors) <= MAX_TENSORS, f"tensors must be a list of 1..{MAX_TENSORS}")
    end, names = 0, set()
    for t in tensors:
        _need(isinstance(t, dict), "tensor entry is not an object")
        name, shape, scheme = t.get("name"), t.get("shape"), t.get("scheme")
        _need(isinstance(name, str) and bool(NAME_RE.match(name)) and name not in names, f"bad tensor name {name!r}")
        names.add(name)
        _need(scheme in q.SCHEMES, f"{name}: unknown scheme {scheme!r}")
        _need(isinstance(shape, list) and 1 <= len(shape) <= MAX_DIMS
              and all(_is_int(d) and 1 <= d <= MAX_NUMEL for d in shape), f"{name}: bad shape {shape!r}")
        numel = int(np.prod(shape, dtype=np.int64))
        _need(numel <= MAX_NUMEL, f"{name}: too many elements")
        off, nd, ns = t.get("offset"), t.get("data_nbytes"), t.get("scales_nbytes")
        _need(all(_is_int(v) and v >= 0 for v in (off, nd, ns)), f"{name}: offsets and sizes must be integers >= 0")
        _need(nd == q.data_nbytes(scheme, numel, bs) and ns == q.scales_nbytes(scheme, numel, bs),
              f"{name}: byte sizes do not match shape {shape} and scheme {scheme}")
        _need(off == end, f"{name}: offset {off} is not where the previous tensor ended ({end})")
        end = off + nd + ns
        _need(end <= body_len, f"{name}: runs past the end of the body ({end} > {body_len})")
    _need(end == body_len, f"tensors cover {end} bytes but the body has {body_len}")
    probe = m.get("probe")
    _need(isinstance(probe, dict) and isinstance(probe.get("texts"), list) and isinstance(probe.get("logits"), list)
          and len(probe["texts"]) == len(probe["logits"]) and len(probe["texts"]) <= 256
          and all(isinstance(s, str) for s in probe["texts"]), "probe texts and logits missing or inconsistent")
    for row in probe["logits"]:
        _need(isinstance(row, list) and 0 < len(row) <= 65536
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row), "probe logits malformed")


def lora_body_bytes(ranks: dict[str, int], shapes: dict[str, tuple[int, int]], scheme: str, block_size: int) -> int:
    """Exact body bytes of the LoRA factors of a rank vector (shapes are (out, in)), before training: what a
    rank policy needs to weigh airtime. The manifest and the head add a few kB on top."""
    return sum(tensor_nbytes((r, shapes[m][1]), scheme, block_size) + tensor_nbytes((shapes[m][0], r), scheme, block_size)
               for m, r in ranks.items() if r > 0)
