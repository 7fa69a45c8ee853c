"""Tests of radio.interleaver: exact inverse, determinism, and burst spreading through the FEC."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio import fec
from radio.errors import FecError
from radio.interleaver import deinterleave, interleave


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1))
def test_exact_inverse_bits_and_llrs(n, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    llrs = rng.standard_normal(n).astype(np.float32)
    out = interleave(bits)
    assert out.dtype == np.uint8 and out.shape == (n,)
    np.testing.assert_array_equal(deinterleave(out), bits)
    np.testing.assert_array_equal(deinterleave(interleave(llrs)), llrs)
    np.testing.assert_array_equal(interleave(deinterleave(llrs)), llrs)
    assert deinterleave(llrs).dtype == np.float32


def test_is_a_fixed_permutation_of_the_length():
    x = np.arange(1000)
    p = interleave(x)
    assert sorted(p.tolist()) == x.tolist()
    np.testing.assert_array_equal(interleave(x), p)  # deterministic across calls
    np.testing.assert_array_equal(interleave(x * 3), p * 3)  # depends only on the length
    assert (p == x).mean() < 0.01  # it really moves things
    assert not np.array_equal(interleave(np.arange(1001))[:1000], p)
    np.testing.assert_array_equal(p, np.random.default_rng(1000).permutation(1000))


def test_tiny_lengths():
    assert interleave(np.array([], np.uint8)).size == 0
    assert interleave(np.array([1], np.uint8)).tolist() == [1]
    assert sorted(interleave(np.array([5, 7])).tolist()) == [5, 7]


def test_cached_permutation_cannot_be_corrupted():
    x = np.arange(50)
    out = interleave(x)
    out[:] = 0
    np.testing.assert_array_equal(deinterleave(interleave(x)), x)


def test_rejects_non_1d():
    with pytest.raises(FecError, match="1-D"):
        interleave(np.zeros((2, 2)))
    with pytest.raises(FecError, match="1-D"):
        deinterleave(np.zeros((2, 2)))


def test_interleaving_lets_fec_correct_a_burst():
    """A 40-bit burst of confidently wrong LLRs breaks rate 1/2 without the interleaver
    and is corrected with it."""
    rng = np.random.default_rng(7)
    n = 2000
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    coded = fec.encode(bits, "1/2")
    clean = 4.0 * (1.0 - 2.0 * coded.astype(np.float32))

    plain = clean.copy()
    plain[1000:1040] *= -1
    assert (fec.decode(plain, "1/2", n) != bits).sum() > 0

    air = 4.0 * (1.0 - 2.0 * interleave(coded).astype(np.float32))
    air[1000:1040] *= -1
    np.testing.assert_array_equal(fec.decode(deinterleave(air), "1/2", n), bits)
