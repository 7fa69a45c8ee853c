"""Block-wise quantizers: exact sizes, round-trip bounds (plain and double-quantized scales), and agreement with
bitsandbytes on flattened tensors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import quantize as q

SHAPES = [(768, 16), (16, 768), (8, 384), (1536, 8), (3, 5), (7,), (1, 1), (64,), (65,)]


@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("scheme", q.SCHEMES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_within_bound_and_exact_sizes(scheme, shape, double_quant):
    x = (np.random.default_rng(1).standard_normal(shape) * 0.03).astype(np.float32)
    packed = q.quantize_verified(x, scheme, 64, double_quant)
    numel = int(np.prod(shape))
    assert len(packed.data) == q.data_nbytes(scheme, numel, 64)
    assert len(packed.scales) == q.scales_nbytes(scheme, numel, 64, double_quant)
    out = q.dequantize(packed)
    assert out.shape == x.shape and out.dtype == np.float32
    if scheme == "none":
        assert np.array_equal(out, x)


def test_bits_per_value():
    numel = 384 * 8
    fp32 = q.data_nbytes("none", numel, 64)
    plain = {s: q.data_nbytes(s, numel, 64) + q.scales_nbytes(s, numel, 64, double_quant=False) for s in q.SCHEMES}
    assert fp32 / plain["nf4"] == pytest.approx(32 / 4.5)
    assert fp32 / plain["int8"] == pytest.approx(32 / 8.5)
    assert q.data_nbytes("fp16", numel, 64) * 2 == fp32
    # double-quantized: one byte per block, two fp32 per 256 blocks (QLoRA's 8-bit scales, one constant pair)
    numel = 64 * 256 * 3
    bits = {s: 8 * (q.data_nbytes(s, numel, 64) + q.scales_nbytes(s, numel, 64)) / numel for s in ("nf4", "int8")}
    assert bits["nf4"] == pytest.approx(4 + 8 / 64 + 64 / (64 * 256)) and bits["nf4"] < 4.13
    assert bits["int8"] == pytest.approx(8 + 8 / 64 + 64 / (64 * 256))
    assert q.scales_nbytes("nf4", 384 * 2, 64) == 12 + 8 and q.scales_nbytes("fp16", 384 * 2, 64) == 0


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 20000), st.sampled_from(["int8", "nf4", "fp4"]), st.sampled_from([16, 64, 128]),
       st.floats(1e-6, 1e3), st.floats(0.0, 6.0), st.booleans())
def test_any_length_any_scale(n, scheme, block, scale, spread, double_quant):
    """Blocks whose scales spread over e**(+-3 spread), including zero blocks: the round trip stays in bounds."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * scale * np.exp(spread * rng.standard_normal(n // 97 + 1)).repeat(97)[:n]
    x[rng.random(n) < 0.02] = 0.0
    q.quantize_verified(x.astype(np.float32), scheme, block, double_quant)


def test_nonfinite_is_refused():
    with pytest.raises(q.QuantizationError):
        q.quantize(np.array([1.0, np.nan], np.float32), "nf4")


def test_corrupt_codes_fail_verification():
    x = np.linspace(-1, 1, 128, dtype=np.float32)
    for double_quant in (True, False):
        packed = q.quantize(x, "nf4", 64, double_quant)
        bad = q.Packed("nf4", packed.shape, 64, bytes(b ^ 0xFF for b in packed.data), packed.scales, double_quant)
        with pytest.raises(q.QuantizationError):
            q.verify_round_trip(x, bad)


@pytest.mark.parametrize("scheme", ["nf4", "fp4"])
@pytest.mark.parametrize("shape", [(768, 16), (8, 384), (5, 13)])
def test_matches_bitsandbytes_on_flattened_tensor(scheme, shape):
    torch = pytest.importorskip("torch")
    bnbf = pytest.importorskip("bitsandbytes.functional")
    x = (np.random.default_rng(2).standard_normal(shape) * 0.05).astype(np.float32)
    codes, state = bnbf.quantize_4bit(torch.from_numpy(x.reshape(-1).copy()), blocksize=64, quant_type=scheme)
    ref = bnbf.dequantize_4bit(codes, state).numpy().reshape(-1)
    ours = q.dequantize(q.quantize(x, scheme, 64, double_quant=False)).reshape(-1)
    np.testing.assert_allclose(ours, ref, atol=1e-7)
    assert codes.numel() == q.data_nbytes(scheme, x.size, 64)


# --- double-quantized scales ---------------------------------------------------------------------------------

def _lognormal_rows(rows, cols, sigma, seed=0):
    """LoRA-like factors whose rows differ in scale by e**(sigma * N(0, 1)): the hard case for scale codes."""
    rng = np.random.default_rng(seed)
    rows_scale = np.exp(sigma * rng.standard_normal((rows, 1)))
    return (rng.standard_normal((rows, cols)) * rows_scale * 0.01).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 3.0])
def test_double_quantized_scales_are_within_half_a_log_step(sigma):
    """Theory: a group's codes are log2-spaced, step = log2(max / min) / 254, so every scale lies within
    2**(step / 2) of its code; the bound is reached (the code is not wastefully fine) and zeros stay zero."""
    x = _lognormal_rows(1536, 16, sigma)  # 384 blocks: two groups, the second one partly padded
    x[:8] = 0.0  # two all-zero blocks
    flat = x.reshape(-1)
    exact = np.abs(flat.reshape(-1, 64)).max(axis=1).astype(np.float64)
    decoded = q.block_scales(q.quantize(x, "nf4", 64)).astype(np.float64)
    assert np.all(decoded[exact == 0] == 0)
    worst = 0.0
    for g in range(0, exact.size, 256):
        s, d = exact[g:g + 256], decoded[g:g + 256]
        nz = s > 0
        step = np.log2(s[nz].max() / s[nz].min()) / 254
        rel = np.abs(d[nz] - s[nz]) / s[nz]
        assert rel.max() <= 2 ** (step / 2) - 1 + 1e-6
        assert d[nz].max() == np.float32(s[nz].max())  # the group's largest scale is exact
        worst = max(worst, rel.max() / (2 ** (step / 2) - 1))
    assert worst > 0.5


def test_double_quantized_codes_are_nearest_at_the_decoded_scale():
    """Element codes are chosen against the scale the edge multiplies by: nearest table entry of x / s'."""
    x = _lognormal_rows(384, 8, 1.0, seed=4)
    packed = q.quantize(x, "nf4", 64)
    scale = np.repeat(q.block_scales(packed), 64)
    normed = np.clip(x.reshape(-1) / scale, -1, 1)
    best = q.NF4_TABLE[np.abs(normed[:, None] - q.NF4_TABLE[None, :]).argmin(axis=1)] * scale
    np.testing.assert_array_equal(q.dequantize(packed).reshape(-1), best.astype(np.float32))


@pytest.mark.parametrize("x", [np.zeros((8, 384), np.float32), np.full((3,), -2.5, np.float32),
                               np.array([0.0, 1e-30, 1e30], np.float32)])
def test_double_quant_edge_cases(x):
    out = q.dequantize(q.quantize_verified(x, "nf4", 16))
    if not np.any(x):
        assert not np.any(out)
    assert np.all(np.isfinite(out))


def test_corrupt_double_quantized_scales_fail_verification():
    x = _lognormal_rows(64, 16, 0.5)
    packed = q.quantize(x, "int8", 64)
    codes = bytearray(packed.scales)
    codes[8] ^= 0x04  # one block's scale code
    bad = q.Packed("int8", packed.shape, 64, packed.data, bytes(codes), True)
    with pytest.raises(q.QuantizationError):
        q.verify_round_trip(x, bad)


@pytest.mark.parametrize("top, step", [(float("nan"), 0.01), (-1.0, 0.01), (float("inf"), 0.01), (1.0, -0.5),
                                       (1.0, 3.0), (1.0, float("nan"))])
def test_hostile_scale_constants_are_refused(top, step):
    raw = np.array([top, step], "<f4").tobytes() + bytes([1, 200, 255])
    with pytest.raises(ValueError, match="scale group"):
        q.unpack_scales(raw, 3)
    with pytest.raises(ValueError, match="bytes"):
        q.unpack_scales(raw[:-1], 3)


@pytest.mark.parametrize("scheme", ["nf4", "fp4"])
@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.0])
def test_no_worse_than_bitsandbytes_double_quant(scheme, sigma):
    """Reference: QLoRA's double quantization (bitsandbytes quantize_4bit with compress_statistics=True: 8-bit
    dynamic codes of the scales' offsets from their mean, one fp32 absmax per 256 scales) on flattened tensors.
    Ours costs the same bytes for up to 256 blocks, matches its RMS error and bounds the worst block's error."""
    torch = pytest.importorskip("torch")
    bnbf = pytest.importorskip("bitsandbytes.functional")
    x = _lognormal_rows(1536, 8, sigma, seed=2)
    flat = x.reshape(-1)
    codes, state = bnbf.quantize_4bit(torch.from_numpy(flat.copy()), blocksize=64, quant_type=scheme,
                                      compress_statistics=True)
    ref = bnbf.dequantize_4bit(codes, state).numpy().reshape(-1)
    ours = q.dequantize(q.quantize(x, scheme, 64)).reshape(-1)
    blocks = flat.size // 64
    assert state.absmax.dtype == torch.uint8 and state.absmax.numel() == blocks
    bnb_bytes = blocks + 4 * state.state2.absmax.numel() + 4  # codes, absmax per 256, the mean offset
    assert q.scales_nbytes(scheme, flat.size, 64) <= bnb_bytes + 4 * -(-blocks // 256)
    absmax = np.repeat(np.abs(flat.reshape(-1, 64)).max(axis=1), 64)
    rms = lambda y: float(np.sqrt(np.mean((y - flat) ** 2)))  # noqa: E731
    worst = lambda y: float(np.max(np.abs(y - flat) / absmax))  # noqa: E731
    assert rms(ours) <= 1.01 * rms(ref)
    assert worst(ours) <= worst(ref) + 1e-3
    assert worst(ours) <= q.error_bound(scheme) * 1.03 + 0.03
