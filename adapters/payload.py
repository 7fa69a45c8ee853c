"""The adapter payload: a fixed header, a JSON manifest, then packed tensors. No pickle; bounded parsing.

Layout (little-endian):
    0   4s  magic b"ALRP"
    4   H   format version (2; version 1 is still read)
    6   H   flags: bit 0 = the manifest is zlib-compressed (FLAG_ZLIB); other bits must be 0
    8   I   manifest length in bytes (as sent, so compressed when FLAG_ZLIB is set)
    12  Q   body length in bytes
    20  32s SHA-256 of everything else in the payload (bytes 0-19, the manifest as sent and the body)
    52  manifest (UTF-8 JSON object, or its zlib stream), then the body (each tensor's data, then its scales)

Version 2 (what `encode` writes by default): the block scales of int8/nf4/fp4 are double-quantized (8-bit log
codes, see adapters.quantize), the manifest is zlib-compressed (flag bit 0; it must inflate to at most
MAX_MANIFEST_BYTES, so a compression bomb allocates nothing beyond that), and a tensor entry is only its name,
shape and scheme: tensors lie in the body in manifest order, and their offsets and sizes follow from shape,
scheme and block size. Version 1 (`encode(..., double_quant=False)`, byte for byte what earlier releases
wrote): fp32 block scales, a plain JSON manifest, flags 0, and each entry also states offset, data_nbytes and
scales_nbytes (checked against the derived values). Other versions are refused with a one-line reason.

The header gives the exact total size, so a receiver knows when it has everything, and the manifest comes
first, so a receiver can refuse a foreign model before the body arrives. Torch-free: the edge's radio path
parses payloads without torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from adapters import quantize as q
from testbed.errors import AirLoraError

MAGIC = b"ALRP"
VERSION = 2
VERSIONS = (1, 2)  # the format versions this code reads
FLAG_ZLIB = 0x1
HEADER = struct.Struct("<4sHHIQ")
HEADER_BYTES = HEADER.size + 32
MAX_MANIFEST_BYTES = 8 << 20  # the manifest as sent, and (compressed) after inflating
MAX_BODY_BYTES = 4 << 30
MAX_TENSORS = 65536
MAX_DIMS = 8
MAX_NUMEL = 1 << 31
MAX_ELEMENTS = 1 << 31
"""Values all tensors of one payload may hold (the format's ceiling; a receiver passes its own, lower one)."""
NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,512}$")


class PayloadError(AirLoraError):
    """A payload that cannot be accepted; the message says why."""


class Header(NamedTuple):
    """The fixed header's fields, checked."""

    version: int
    flags: int
    manifest_len: int
    body_len: int
    sha256: bytes


class Slot(NamedTuple):
    """Where one tensor lies in the body, as the manifest implies it."""

    name: str
    scheme: str
    shape: tuple[int, ...]
    offset: int
    data_nbytes: int
    scales_nbytes: int


@dataclass
class Payload:
    """A decoded payload: the manifest and fp32 tensors by name."""

    manifest: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    sha256: str = ""
    size_bytes: int = 0
    version: int = VERSION
    signed_by: str | None = None
    """The key id that signed it (adapters.signing), set by the edge after the signature check."""


def tensor_nbytes(shape: tuple[int, ...], scheme: str, block_size: int, double_quant: bool = True) -> int:
    """Exact body bytes of one tensor (data plus scales); double_quant=False gives format 1's fp32 scales."""
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return q.data_nbytes(scheme, numel, block_size) + q.scales_nbytes(scheme, numel, block_size, double_quant)


def encode(manifest: dict[str, Any], tensors: dict[str, np.ndarray], schemes: dict[str, str],
           block_size: int, double_quant: bool = True) -> bytes:
    """Quantize (verified round trip), pack and hash; `schemes` gives each tensor's scheme.

    double_quant=True writes format 2 (double-quantized scales, compressed manifest); False writes format 1.
    """
    version = VERSION if double_quant else 1
    entries, chunks, offset = [], [], 0
    for name in sorted(tensors):
        if not NAME_RE.match(name):
            raise PayloadError(f"tensor name {name!r} is not allowed")
        packed = q.quantize_verified(np.asarray(tensors[name], np.float32), schemes[name], block_size, double_quant)
        entry = {"name": name, "shape": list(packed.shape), "scheme": packed.scheme}
        if version == 1:
            entry.update(offset=offset, data_nbytes=len(packed.data), scales_nbytes=len(packed.scales))
        entries.append(entry)
        chunks += [packed.data, packed.scales]
        offset += len(packed.data) + len(packed.scales)
    full = dict(manifest, format="airlora-adapter", version=version, block_size=block_size, tensors=entries)
    man = json.dumps(full, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    body = b"".join(chunks)
    if len(man) > MAX_MANIFEST_BYTES or len(body) > MAX_BODY_BYTES:
        raise PayloadError("payload exceeds the format's size limits")
    flags = 0
    if version >= 2:
        man, flags = zlib.compress(man, 9), FLAG_ZLIB
    head = HEADER.pack(MAGIC, version, flags, len(man), len(body))
    digest = hashlib.sha256(head + man + body).digest()
    return head + digest + man + body


def parse_header(buf: bytes) -> Header:
    """The fixed header from the first 52 bytes, with every field checked."""
    if len(buf) < HEADER_BYTES:
        raise PayloadError(f"payload is truncated: {len(buf)} bytes, the header alone needs {HEADER_BYTES}")
    magic, version, flags, man_len, body_len = HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise PayloadError("not an adapter payload (bad magic bytes)")
    if version not in VERSIONS:
        raise PayloadError(f"unsupported payload format version {version} (this edge reads versions "
                           f"{', '.join(map(str, VERSIONS))})")
    allowed = FLAG_ZLIB if version >= 2 else 0
    if flags & ~allowed:
        raise PayloadError(f"unsupported payload flags {flags:#x} for format version {version}")
    if man_len == 0 or man_len > MAX_MANIFEST_BYTES:
        raise PayloadError(f"manifest length {man_len} is outside 1..{MAX_MANIFEST_BYTES}")
    if body_len > MAX_BODY_BYTES:
        raise PayloadError(f"body length {body_len} exceeds the limit {MAX_BODY_BYTES}")
    return Header(version, flags, man_len, body_len, bytes(buf[HEADER.size:HEADER_BYTES]))


def read_header(buf: bytes) -> tuple[int, int, bytes]:
    """(manifest length, body length, sha256) from the first 52 bytes, with every field checked."""
    h = parse_header(buf)
    return h.manifest_len, h.body_len, h.sha256


def total_size(buf: bytes) -> int:
    """The exact payload size the header announces."""
    man_len, body_len, _ = read_header(buf)
    return HEADER_BYTES + man_len + body_len


def _inflate(raw: bytes) -> bytes:
    """A compressed manifest, inflated to at most MAX_MANIFEST_BYTES (never allocating beyond that)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(raw, MAX_MANIFEST_BYTES + 1)
    except zlib.error as exc:
        raise PayloadError(f"compressed manifest is not a valid zlib stream ({exc})") from None
    if len(out) > MAX_MANIFEST_BYTES:
        raise PayloadError(f"compressed manifest inflates beyond the limit of {MAX_MANIFEST_BYTES} bytes")
    if not d.eof:
        raise PayloadError("compressed manifest is cut short (its zlib stream does not end)")
    if d.unused_data:
        raise PayloadError(f"compressed manifest has {len(d.unused_data)} bytes after the end of its zlib stream")
    return out


def _read(buf: bytes, max_elements: int = MAX_ELEMENTS) -> tuple[Header, dict[str, Any], list[Slot]]:
    """Header, checked manifest and the tensors' places in the body, from a prefix holding the manifest."""
    h = parse_header(buf)
    if len(buf) < HEADER_BYTES + h.manifest_len:
        raise PayloadError(f"payload is truncated: the manifest needs {HEADER_BYTES + h.manifest_len} bytes, "
                           f"got {len(buf)}")
    raw = bytes(buf[HEADER_BYTES:HEADER_BYTES + h.manifest_len])
    if h.flags & FLAG_ZLIB:
        raw = _inflate(raw)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"manifest is not valid JSON ({type(exc).__name__})") from None
    return h, manifest, _check_manifest(manifest, h.body_len, h.version, max_elements)


def read_manifest(buf: bytes, max_elements: int = MAX_ELEMENTS) -> dict[str, Any]:
    """The manifest, parsed and checked, from a prefix of the payload (the body may still be missing).

    Not yet covered by the SHA-256 check: use it to refuse early, never to accept.
    """
    return _read(buf, max_elements)[1]


def decode(buf: bytes, max_elements: int = MAX_ELEMENTS) -> Payload:
    """Check size, SHA-256 and manifest, then dequantize every tensor; raise PayloadError on any problem.

    max_elements bounds the values of all tensors together (4 bytes each once dequantized): it is checked on
    the manifest, before anything is dequantized, so a payload cannot make its receiver allocate beyond it."""
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
    h, manifest, slots = _read(buf, max_elements)
    body = view[HEADER_BYTES + man_len:]
    tensors = {}
    for s in slots:
        end = s.offset + s.data_nbytes
        packed = q.Packed(s.scheme, s.shape, manifest["block_size"], bytes(body[s.offset:end]),
                          bytes(body[end:end + s.scales_nbytes]), double_quant=h.version >= 2)
        try:
            tensors[s.name] = q.dequantize(packed)
        except ValueError as exc:
            raise PayloadError(f"tensor {s.name}: {exc}") from None
    return Payload(manifest, tensors, digest.hex(), expected, h.version)


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise PayloadError(f"bad manifest: {why}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_manifest(m: Any, body_len: int, version: int, max_elements: int = MAX_ELEMENTS) -> list[Slot]:
    """Every field the edge uses, checked against types, sane limits and the body length; the tensors' places."""
    _need(isinstance(m, dict), "not a JSON object")
    _need(m.get("format") == "airlora-adapter", "wrong format")
    _need(m.get("version") == version, f"version {m.get('version')!r} differs from the header's {version}")
    bs = m.get("block_size")
    _need(_is_int(bs) and 16 <= bs <= 4096, "block_size must be an integer in 16..4096")
    model = m.get("model")
    _need(isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("sha256"), str),
          "model identity (name, sha256) missing")
    tensors = m.get("tensors")
    _need(isinstance(tensors, list) and 0 < len(tensors) <= MAX_TENSORS, f"tensors must be a list of 1..{MAX_TENSORS}")
    dq = version >= 2
    slots, end, names, elements = [], 0, set(), 0
    for t in tensors:
        _need(isinstance(t, dict), "tensor entry is not an object")
        name, shape, scheme = t.get("name"), t.get("shape"), t.get("scheme")
        _need(isinstance(name, str) and bool(NAME_RE.match(name)) and name not in names, f"bad tensor name {name!r}")
        names.add(name)
        _need(scheme in q.SCHEMES, f"{name}: unknown scheme {scheme!r}")
        _need(isinstance(shape, list) and 1 <= len(shape) <= MAX_DIMS
              and all(_is_int(d) and 1 <= d <= MAX_NUMEL for d in shape), f"{name}: bad shape {shape!r}")
        numel = 1
        for d in shape:  # exact (Python ints): a product of large dimensions cannot wrap around
            numel *= d
        _need(numel <= MAX_NUMEL, f"{name}: too many elements")
        elements += numel
        _need(elements <= max_elements, f"the tensors hold more than {max_elements} values in all (this receiver's "
                                        "limit; 4 bytes each once dequantized)")
        nd, ns = q.data_nbytes(scheme, numel, bs), q.scales_nbytes(scheme, numel, bs, dq)
        if version == 1:
            off, given_nd, given_ns = t.get("offset"), t.get("data_nbytes"), t.get("scales_nbytes")
            _need(all(_is_int(v) and v >= 0 for v in (off, given_nd, given_ns)),
                  f"{name}: offsets and sizes must be integers >= 0")
            _need(given_nd == nd and given_ns == ns,
                  f"{name}: byte sizes do not match shape {shape} and scheme {scheme}")
            _need(off == end, f"{name}: offset {off} is not where the previous tensor ended ({end})")
        slots.append(Slot(name, scheme, tuple(shape), end, nd, ns))
        end += nd + ns
        _need(end <= body_len, f"{name}: runs past the end of the body ({end} > {body_len})")
    _need(end == body_len, f"tensors cover {end} bytes but the body has {body_len}")
    probe = m.get("probe")
    _need(isinstance(probe, dict) and isinstance(probe.get("texts"), list) and isinstance(probe.get("logits"), list)
          and len(probe["texts"]) == len(probe["logits"]) and len(probe["texts"]) <= 256
          and all(isinstance(s, str) for s in probe["texts"]), "probe texts and logits missing or inconsistent")
    for row in probe["logits"]:
        _need(isinstance(row, list) and 0 < len(row) <= 65536
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row), "probe logits malformed")
    return slots


def lora_body_bytes(ranks: dict[str, int], shapes: dict[str, tuple[int, int]], scheme: str, block_size: int,
                    double_quant: bool = True) -> int:
    """Exact body bytes of the LoRA factors of a rank vector (shapes are (out, in)), before training: what a
    rank policy needs to weigh airtime. The manifest and the head add a few kB on top."""
    return sum(tensor_nbytes((r, shapes[m][1]), scheme, block_size, double_quant)
               + tensor_nbytes((shapes[m][0], r), scheme, block_size, double_quant)
               for m, r in ranks.items() if r > 0)
