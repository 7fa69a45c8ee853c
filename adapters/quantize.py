"""Block-wise adapter quantization (none, fp16, int8, NF4, FP4) in numpy, with round-trip verification.

Torch-free on purpose: the edge dequantizes with the same code. Every block of `block_size` elements of the
flattened tensor has one fp32 absmax scale; 4-bit codes are packed two per byte, the first element in the
high nibble (as bitsandbytes does). Code tables are bitsandbytes' NF4 and FP4 (e2m1) tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("none", "fp16", "int8", "nf4", "fp4")

# QLoRA's NormalFloat4 code table (bitsandbytes `get_4bit_type('nf4')`).
NF4_TABLE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0], dtype=np.float32)

# bitsandbytes' FP4 (e2m1) table, normalised to max 1: codes 0-7 positive, 8-15 the same magnitudes negated.
_FP4_POS = np.array([0.0, 0.0052083333, 0.6666667, 1.0, 0.3333333, 0.5, 0.1666667, 0.25], dtype=np.float32)
FP4_TABLE = np.concatenate([_FP4_POS, -_FP4_POS]).astype(np.float32)

TABLES = {"nf4": NF4_TABLE, "fp4": FP4_TABLE}


class QuantizationError(ValueError):
    """A tensor did not survive its quantization round trip within the scheme's bound."""


@dataclass(frozen=True)
class Packed:
    """One quantized tensor: its codes (or raw values) and per-block fp32 scales, as bytes."""

    scheme: str
    shape: tuple[int, ...]
    block_size: int
    data: bytes
    scales: bytes


def num_blocks(numel: int, block_size: int) -> int:
    """Blocks covering `numel` elements."""
    return -(-numel // block_size)


def data_nbytes(scheme: str, numel: int, block_size: int) -> int:
    """Exact size of the data section of a tensor of `numel` elements."""
    if scheme == "none":
        return 4 * numel
    if scheme == "fp16":
        return 2 * numel
    if scheme == "int8":
        return numel
    if scheme in TABLES:
        return (numel + 1) // 2
    raise ValueError(f"unknown quantization scheme {scheme!r}")


def scales_nbytes(scheme: str, numel: int, block_size: int) -> int:
    """Exact size of the scales section (fp32 absmax per block; none for none/fp16)."""
    return 0 if scheme in ("none", "fp16") else 4 * num_blocks(numel, block_size)


def _absmax(flat: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to whole blocks; return (blocks [n_blocks, block_size], absmax per block)."""
    pad = (-flat.size) % block_size
    blocks = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, block_size)
    return blocks, np.abs(blocks).max(axis=1).astype(np.float32)


def quantize(x: np.ndarray, scheme: str, block_size: int = 64) -> Packed:
    """Quantize an fp32 array with one scheme; the result's sizes are exactly data_nbytes/scales_nbytes."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(flat)):
        raise QuantizationError("tensor has non-finite values")
    shape = tuple(int(d) for d in np.shape(x))
    if scheme == "none":
        return Packed(scheme, shape, block_size, flat.astype("<f4").tobytes(), b"")
    if scheme == "fp16":
        return Packed(scheme, shape, block_size, flat.astype("<f2").tobytes(), b"")
    blocks, absmax = _absmax(flat, block_size)
    safe = np.where(absmax > 0, absmax, 1.0)[:, None]
    normed = blocks / safe
    if scheme == "int8":
        codes = np.clip(np.rint(normed * 127.0), -127, 127).astype(np.int8).reshape(-1)[: flat.size]
        data = codes.tobytes()
    elif scheme in TABLES:
        table = TABLES[scheme]
        codes = np.abs(normed.reshape(-1, 1) - table[None, :]).argmin(axis=1).astype(np.uint8)[: flat.size]
        if codes.size % 2:
            codes = np.concatenate([codes, np.zeros(1, np.uint8)])
        data = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).tobytes()
    else:
        raise ValueError(f"unknown quantization scheme {scheme!r}")
    return Packed(scheme, shape, block_size, data, absmax.astype("<f4").tobytes())


def dequantize(packed: Packed) -> np.ndarray:
    """fp32 array of packed.shape; raises ValueError if the byte sizes do not match the shape."""
    numel = int(np.prod(packed.shape, dtype=np.int64)) if packed.shape else 1
    scheme, bs = packed.scheme, packed.block_size
    if len(packed.data) != data_nbytes(scheme, numel, bs) or len(packed.scales) != scales_nbytes(scheme, numel, bs):
        raise ValueError(f"{scheme} tensor of shape {packed.shape}: byte sizes do not match the shape")
    if scheme == "none":
        return np.frombuffer(packed.data, "<f4").astype(np.float32).reshape(packed.shape)
    if scheme == "fp16":
        return np.frombuffer(packed.data, "<f2").astype(np.float32).reshape(packed.shape)
    absmax = np.frombuffer(packed.scales, "<f4").astype(np.float32)
    if scheme == "int8":
        values = np.frombuffer(packed.data, np.int8).astype(np.float32) / 127.0
    else:
        raw = np.frombuffer(packed.data, np.uint8)
        codes = np.empty(raw.size * 2, np.uint8)
        codes[0::2], codes[1::2] = raw >> 4, raw & 0x0F
        values = TABLES[scheme][codes[:numel]]
    scale = np.repeat(absmax, bs)[:numel]
    return (values * scale).astype(np.float32).reshape(packed.shape)


def error_bound(scheme: str) -> float:
    """Largest |x - dequant(quant(x))| per element, as a fraction of its block's absmax (plus float slop)."""
    if scheme == "none":
        return 0.0
    if scheme == "fp16":
        return 2.0 ** -11  # relative to the value itself; see verify_round_trip
    if scheme == "int8":
        return 0.5 / 127.0 + 1e-6
    table = np.sort(TABLES[scheme])
    return float(np.max(np.diff(table)) / 2.0) + 1e-6


def verify_round_trip(x: np.ndarray, packed: Packed) -> float:
    """Check the decoded tensor against the original within the scheme's bound; return the max abs error."""
    ref = np.asarray(x, dtype=np.float32)
    out = dequantize(packed)
    if out.shape != ref.shape:
        raise QuantizationError(f"round trip changed the shape {ref.shape} -> {out.shape}")
    err = np.abs(out - ref)
    if packed.scheme == "none":
        ok = bool(np.all(err == 0))
    elif packed.scheme == "fp16":
        ok = bool(np.all(err <= np.abs(ref) * error_bound("fp16") + 6.0e-8))
    else:
        flat_err = err.reshape(-1)
        blocks, absmax = _absmax(ref.reshape(-1), packed.block_size)
        bound = np.repeat(absmax, packed.block_size)[: flat_err.size] * error_bound(packed.scheme)
        ok = bool(np.all(flat_err <= bound * (1 + 1e-5)))
    if not ok:
        raise QuantizationError(f"{packed.scheme} round trip of a {ref.shape} tensor exceeds the scheme's bound")
    return float(err.max()) if err.size else 0.0


def quantize_verified(x: np.ndarray, scheme: str, block_size: int = 64) -> Packed:
    """Quantize and verify the round trip (what the edge will decode) before anything is sent."""
    packed = quantize(x, scheme, block_size)
    verify_round_trip(x, packed)
    return packed
