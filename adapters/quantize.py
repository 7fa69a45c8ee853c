"""Block-wise adapter quantization (none, fp16, int8, NF4, FP4) in numpy, with round-trip verification.

Torch-free on purpose: the edge dequantizes with the same code. Every block of `block_size` elements of the
flattened tensor has one absmax scale; 4-bit codes are packed two per byte, the first element in the high nibble
(as bitsandbytes does). Code tables are bitsandbytes' NF4 and FP4 (e2m1) tables.

Block scales travel in one of two ways:
- plain (payload format 1): one fp32 absmax per block, 32 bits per block (0.5 bit per element at block 64);
- double-quantized (payload format 2, the default): like QLoRA, the scales are themselves quantized to 8 bits
  in groups of SCALE_GROUP (256) blocks. The 8-bit code is logarithmic rather than QLoRA's dynamic code of the
  scales' offsets from their mean: code 0 is a zero scale, code k in 1..255 is `top * 2**(-(k - 1) * step)`,
  where `top` is the group's largest scale and `step = log2(top / smallest non-zero scale) / 254`, both fp32.
  Every scale then keeps its relative error within 2**(step / 2) - 1 (0.14 % for scales spread 2x, 1.1 % for
  256x), where a code of offsets from the mean gives small scales a large relative error (measured on rows
  whose magnitudes are log-normal with sigma 2: QLoRA's code misses some small scales by 5 times their size;
  the two codes' RMS errors are alike). Cost: one byte per block plus 8 bytes per group (~0.13 bit per
  element at block 64; the same bytes as QLoRA's up to 256 blocks), so NF4 costs ~4.13 bits per element
  instead of 4.5. The element
  codes are chosen against the decoded scale (what the edge multiplies by), never worse than against the
  exact one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("none", "fp16", "int8", "nf4", "fp4")
SCALE_GROUP = 256  # blocks per group of double-quantized scales (QLoRA's blocksize for its scales)
SCALE_CODES = 254  # log steps between a group's smallest and largest non-zero scale (codes 1..255)
MAX_SCALE_STEP = 2.0  # largest log2 step a group can need (fp32 spans < 2**280); larger ones are refused

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
    """One quantized tensor: its codes (or raw values) and its block scales (fp32, or double-quantized), as bytes."""

    scheme: str
    shape: tuple[int, ...]
    block_size: int
    data: bytes
    scales: bytes
    double_quant: bool = False


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


def scales_nbytes(scheme: str, numel: int, block_size: int, double_quant: bool = True) -> int:
    """Exact size of the scales section: none for none/fp16; else fp32 per block, or (double-quantized) one
    byte per block plus two fp32 (top, step) per group of SCALE_GROUP blocks."""
    if scheme in ("none", "fp16"):
        return 0
    blocks = num_blocks(numel, block_size)
    return blocks + 8 * num_blocks(blocks, SCALE_GROUP) if double_quant else 4 * blocks


def _absmax(flat: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to whole blocks; return (blocks [n_blocks, block_size], absmax per block)."""
    pad = (-flat.size) % block_size
    blocks = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, block_size)
    return blocks, np.abs(blocks).max(axis=1).astype(np.float32)


def _groups(scales: np.ndarray) -> np.ndarray:
    """[n_groups, SCALE_GROUP] view of the scales, padded with zeros."""
    pad = (-scales.size) % SCALE_GROUP
    return np.concatenate([scales, np.zeros(pad, scales.dtype)]).reshape(-1, SCALE_GROUP)


def scale_steps(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top, step) per group of SCALE_GROUP scales, fp32: the largest scale and the log2 step that reaches the
    smallest non-zero one in SCALE_CODES steps (rounded up, so no scale of the group lies outside the code)."""
    g = _groups(np.asarray(scales, np.float32)).astype(np.float64)
    top = g.max(axis=1)
    low = np.where(g > 0, g, np.inf).min(axis=1)
    span = np.where(top > 0, np.log2(np.where(top > 0, top, 1.0) / np.where(np.isfinite(low), low, 1.0)), 0.0)
    step = (span / SCALE_CODES).astype(np.float32)
    step = np.where(step.astype(np.float64) < span / SCALE_CODES, np.nextafter(step, np.float32(np.inf)), step)
    return top.astype(np.float32), step.astype(np.float32)


def _decode_scales(top: np.ndarray, step: np.ndarray, codes: np.ndarray, n_blocks: int) -> np.ndarray:
    """fp32 scales of n_blocks blocks from each group's (top, step) and the 8-bit codes."""
    k = _groups(codes.astype(np.int64))
    value = top[:, None].astype(np.float64) * np.exp2(-(k - 1) * step[:, None].astype(np.float64))
    return np.where(k > 0, value, 0.0).astype(np.float32).reshape(-1)[:n_blocks]


def pack_scales(scales: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Double-quantize fp32 block scales (>= 0): (bytes of (top, step) per group then one code per block, the
    scales as the edge will decode them)."""
    scales = np.asarray(scales, np.float32)
    top, step = scale_steps(scales)
    g = _groups(scales).astype(np.float64)
    safe_step = np.where(step > 0, step, 1.0).astype(np.float64)[:, None]
    ratio = np.log2(np.where(top > 0, top, 1.0).astype(np.float64)[:, None] / np.where(g > 0, g, 1.0))
    k = np.where(g > 0, 1 + np.clip(np.rint(ratio / safe_step), 0, SCALE_CODES), 0).astype(np.uint8)
    codes = k.reshape(-1)[: scales.size]
    head = np.stack([top, step], axis=1).astype("<f4").tobytes()
    return head + codes.tobytes(), _decode_scales(top, step, codes, scales.size)


def unpack_scales(raw: bytes, n_blocks: int) -> np.ndarray:
    """fp32 block scales from double-quantized bytes; raises ValueError on a size or a constant out of range."""
    groups = num_blocks(n_blocks, SCALE_GROUP)
    if len(raw) != 8 * groups + n_blocks:
        raise ValueError(f"double-quantized scales have {len(raw)} bytes, {n_blocks} blocks need "
                         f"{8 * groups + n_blocks}")
    consts = np.frombuffer(raw, "<f4", count=2 * groups).reshape(groups, 2).astype(np.float32)
    top, step = consts[:, 0], consts[:, 1]
    if not (np.all(np.isfinite(top)) and np.all(top >= 0)):
        raise ValueError("a scale group's top value is negative or not finite")
    if not (np.all(np.isfinite(step)) and np.all(step >= 0) and np.all(step <= MAX_SCALE_STEP)):
        raise ValueError(f"a scale group's log step is outside 0..{MAX_SCALE_STEP}")
    return _decode_scales(top, step, np.frombuffer(raw, np.uint8, offset=8 * groups), n_blocks)


def _encode_blocks(blocks: np.ndarray, scale: np.ndarray, scheme: str, numel: int) -> bytes:
    """Codes of the blocks divided by their scales (clipped to [-1, 1]), as bytes."""
    normed = np.clip(blocks / np.where(scale > 0, scale, 1.0)[:, None], -1.0, 1.0)
    if scheme == "int8":
        return np.rint(normed * 127.0).astype(np.int8).reshape(-1)[:numel].tobytes()
    table = TABLES[scheme]
    codes = np.abs(normed.reshape(-1, 1) - table[None, :]).argmin(axis=1).astype(np.uint8)[:numel]
    if codes.size % 2:
        codes = np.concatenate([codes, np.zeros(1, np.uint8)])
    return ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).tobytes()


def quantize(x: np.ndarray, scheme: str, block_size: int = 64, double_quant: bool = True) -> Packed:
    """Quantize an fp32 array with one scheme; the result's sizes are exactly data_nbytes/scales_nbytes."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(flat)):
        raise QuantizationError("tensor has non-finite values")
    shape = tuple(int(d) for d in np.shape(x))
    if scheme == "none":
        return Packed(scheme, shape, block_size, flat.astype("<f4").tobytes(), b"", double_quant)
    if scheme == "fp16":
        return Packed(scheme, shape, block_size, flat.astype("<f2").tobytes(), b"", double_quant)
    if scheme not in ("int8", *TABLES):
        raise ValueError(f"unknown quantization scheme {scheme!r}")
    blocks, absmax = _absmax(flat, block_size)
    if double_quant:
        scales, used = pack_scales(absmax)
    else:
        scales, used = absmax.astype("<f4").tobytes(), absmax
    return Packed(scheme, shape, block_size, _encode_blocks(blocks, used, scheme, flat.size), scales, double_quant)


def block_scales(packed: Packed) -> np.ndarray:
    """The fp32 scale of every block, as the decoder uses it."""
    numel = int(np.prod(packed.shape, dtype=np.int64)) if packed.shape else 1
    n_blocks = num_blocks(numel, packed.block_size)
    if packed.double_quant:
        return unpack_scales(packed.scales, n_blocks)
    return np.frombuffer(packed.scales, "<f4").astype(np.float32)


def dequantize(packed: Packed) -> np.ndarray:
    """fp32 array of packed.shape; raises ValueError if the byte sizes do not match the shape."""
    numel = int(np.prod(packed.shape, dtype=np.int64)) if packed.shape else 1
    scheme, bs = packed.scheme, packed.block_size
    if (len(packed.data) != data_nbytes(scheme, numel, bs)
            or len(packed.scales) != scales_nbytes(scheme, numel, bs, packed.double_quant)):
        raise ValueError(f"{scheme} tensor of shape {packed.shape}: byte sizes do not match the shape")
    if scheme == "none":
        return np.frombuffer(packed.data, "<f4").astype(np.float32).reshape(packed.shape)
    if scheme == "fp16":
        return np.frombuffer(packed.data, "<f2").astype(np.float32).reshape(packed.shape)
    absmax = block_scales(packed)
    # In place, block by block: the peak is the fp32 result plus one byte per element (the codes), never a
    # per-element scale array or a second copy of the result.
    if scheme == "int8":
        values = np.frombuffer(packed.data, np.int8).astype(np.float32)
        values /= 127.0
    else:
        raw = np.frombuffer(packed.data, np.uint8)
        codes = np.empty(raw.size * 2, np.uint8)
        np.right_shift(raw, 4, out=codes[0::2])
        np.bitwise_and(raw, 0x0F, out=codes[1::2])
        values = TABLES[scheme][codes[:numel]]
        del codes
    full = numel // bs * bs
    values[:full].reshape(-1, bs)[...] *= absmax[: full // bs, None]
    if full < numel:
        values[full:] *= absmax[full // bs]
    return values.reshape(packed.shape)


def error_bound(scheme: str) -> float:
    """Largest |x - dequant(quant(x))| per element, as a fraction of its block's scale (plus float slop); with
    double-quantized scales the scale's own error adds on top (see scale_error_bound and verify_round_trip)."""
    if scheme == "none":
        return 0.0
    if scheme == "fp16":
        return 2.0 ** -11  # relative to the value itself; see verify_round_trip
    if scheme == "int8":
        return 0.5 / 127.0 + 1e-6
    table = np.sort(TABLES[scheme])
    return float(np.max(np.diff(table)) / 2.0) + 1e-6


def scale_error_bound(scales: np.ndarray) -> np.ndarray:
    """Largest |decoded - exact| / exact of each double-quantized block scale: half a log step of its group,
    2**(step / 2) - 1 (plus float slop); zero scales decode exactly."""
    _, step = scale_steps(scales)
    rel = np.exp2(step.astype(np.float64) / 2.0) - 1.0 + 1e-6
    return np.repeat(rel, SCALE_GROUP)[: np.size(scales)]


def verify_round_trip(x: np.ndarray, packed: Packed) -> float:
    """Check the decoded tensor against the original within the scheme's bound; return the max abs error.

    Block-wise schemes: every decoded scale s' is within scale_error_bound of the exact absmax s (s' = s
    with plain scales), and every element within error_bound(scheme) * s' + max(0, s - s'): half the code
    table's widest gap at the decoded scale, plus what clipping to [-s', s'] costs when s' < s.
    """
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
        _, exact = _absmax(ref.reshape(-1), packed.block_size)
        used = block_scales(packed).astype(np.float64)
        exact = exact.astype(np.float64)
        if packed.double_quant:
            scale_ok = np.abs(used - exact) <= scale_error_bound(exact.astype(np.float32)) * exact
        else:
            scale_ok = used == exact
        per_block = error_bound(packed.scheme) * used + np.maximum(exact - used, 0.0)
        bound = np.repeat(per_block, packed.block_size)[: flat_err.size]
        ok = bool(np.all(scale_ok)) and bool(np.all(flat_err <= bound * (1 + 1e-5)))
    if not ok:
        raise QuantizationError(f"{packed.scheme} round trip of a {ref.shape} tensor exceeds the scheme's bound")
    return float(err.max()) if err.size else 0.0


def quantize_verified(x: np.ndarray, scheme: str, block_size: int = 64, double_quant: bool = True) -> Packed:
    """Quantize and verify the round trip (what the edge will decode) before anything is sent."""
    packed = quantize(x, scheme, block_size, double_quant)
    verify_round_trip(x, packed)
    return packed
