"""Block-wise quantizers: exact sizes, round-trip bounds, and agreement with bitsandbytes on flattened tensors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import quantize as q

SHAPES = [(768, 16), (16, 768), (8, 384), (1536, 8), (3, 5), (7,), (1, 1), (64,), (65,)]


@pytest.mark.parametrize("scheme", q.SCHEMES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_within_bound_and_exact_sizes(scheme, shape):
    x = (np.random.default_rng(1).standard_normal(shape) * 0.03).astype(np.float32)
    packed = q.quantize_verified(x, scheme, 64)
    numel = int(np.prod(shape))
    assert len(packed.data) == q.data_nbytes(scheme, numel, 64)
    assert len(packed.scales) == q.scales_nbytes(scheme, numel, 64)
    out = q.dequantize(packed)
    assert out.shape == x.shape and out.dtype == np.float32
    if scheme == "none":
        assert np.array_equal(out, x)


def test_bits_per_value():
    numel = 384 * 8
    fp32 = q.data_nbytes("none", numel, 64)
    assert fp32 / (q.data_nbytes("nf4", numel, 64) + q.scales_nbytes("nf4", numel, 64)) == pytest.approx(32 / 4.5)
    assert fp32 / (q.data_nbytes("int8", numel, 64) + q.scales_nbytes("int8", numel, 64)) == pytest.approx(32 / 8.5)
    assert q.data_nbytes("fp16", numel, 64) * 2 == fp32


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.sampled_from(["int8", "nf4", "fp4"]), st.sampled_from([16, 64, 128]),
       st.floats(1e-6, 1e3))
def test_any_length_any_scale(n, scheme, block, scale):
    x = (np.random.default_rng(n).standard_normal(n) * scale).astype(np.float32)
    q.quantize_verified(x, scheme, block)


def test_nonfinite_is_refused():
    with pytest.raises(q.QuantizationError):
        q.quantize(np.array([1.0, np.nan], np.float32), "nf4")


def test_corrupt_codes_fail_verification():
    x = np.linspace(-1, 1, 128, dtype=np.float32)
    packed = q.quantize(x, "nf4", 64)
    bad = q.Packed("nf4", packed.shape, 64, bytes(b ^ 0xFF for b in packed.data), packed.scales)
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
    ours = q.dequantize(q.quantize(x, scheme, 64)).reshape(-1)
    np.testing.assert_allclose(ours, ref, atol=1e-7)
    assert codes.numel() == q.data_nbytes(scheme, x.size, 64)
