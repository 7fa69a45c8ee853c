"""Tests of radio.fec: encoder against scikit-commpy, Viterbi against commpy, BER references.

commpy conventions found (scikit-commpy 0.8.0):
- Trellis(..., polynomial_format='MSB') (the default) reads the generator bit-reversed: its tap on
  the current input is the LSB of the octal number, so 0o133/0o171 give the time-reversed code
  (impulse responses 1101101 / 1001111, i.e. our code with 0o155/0o117). The 802.11 code (MSB =
  tap on the current input, as in MATLAB poly2trellis) is polynomial_format='Matlab' (or 'LSB').
- conv_encode serializes outputs A0 B0 A1 B1 ... with the first generator first, like ours, and
  'term' appends 6 zero tail bits, so the lengths match: 2 * (n + 6).
- viterbi_decode: 'unquantized' expects real values where +1 means bit 1 (it compares against
  2c - 1); 'soft' expects LLR = log(P1/P0). Ours is log(P0/P1), so both get the negated input.
  It is a sliding-window decoder (default traceback depth 5 * 6 = 30, starting from the best
  state, not the zero state), so at low SNR it is measurably worse than our full-traceback ML
  decoder; with tb_depth=60 it returns our bits except within a few bits of the block end.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import commpy.channelcoding as cc

from radio import fec
from radio.errors import FecError, RadioError
from testbed.errors import AirLoraError

TR_80211 = cc.Trellis(np.array([6]), np.array([[0o133, 0o171]]), polynomial_format="Matlab")
RATE_VALUE = {"1/2": 0.5, "2/3": 2 / 3, "3/4": 0.75}


def _awgn_llrs(coded: np.ndarray, ebn0_db: float, rate: float, rng) -> np.ndarray:
    """BPSK (0 -> +1) over AWGN at this Eb/N0 (energy per info bit), exact LLRs 2y/sigma^2."""
    sigma = np.sqrt(1.0 / (2.0 * rate * 10 ** (ebn0_db / 10)))
    y = 1.0 - 2.0 * coded + sigma * rng.standard_normal(coded.size)
    return (2.0 * y / sigma**2).astype(np.float32)


def _path_metric(llrs: np.ndarray, bits: np.ndarray) -> float:
    """Correlation of the LLRs with the terminated codeword of bits (the Viterbi metric)."""
    return float(np.dot(llrs.astype(np.float64), 1.0 - 2.0 * fec.conv_encode(bits)))


# --- encoder ------------------------------------------------------------------------------


def test_impulse_response_is_802_11_generators():
    out = fec.conv_encode(np.array([1], dtype=np.uint8))
    assert out.dtype == np.uint8 and out.shape == (14,)
    assert out[0::2].tolist() == [1, 0, 1, 1, 0, 1, 1]  # 0o133
    assert out[1::2].tolist() == [1, 1, 1, 1, 0, 0, 1]  # 0o171


@pytest.mark.parametrize("n", [0, 1, 7, 64, 333])
def test_conv_encode_matches_commpy(n):
    bits = np.random.default_rng(n).integers(0, 2, n, dtype=np.uint8)
    ours = fec.conv_encode(bits)
    theirs = cc.conv_encode(bits, TR_80211, "term")
    assert ours.shape == (2 * (n + 6),)
    np.testing.assert_array_equal(ours, theirs)


def test_commpy_default_format_is_time_reversed():
    bits = np.random.default_rng(9).integers(0, 2, 200, dtype=np.uint8)
    default = cc.Trellis(np.array([6]), np.array([[0o133, 0o171]]))  # polynomial_format='MSB'
    reversed_taps = cc.Trellis(np.array([6]), np.array([[0o155, 0o117]]), polynomial_format="Matlab")
    np.testing.assert_array_equal(
        cc.conv_encode(bits, default, "term"), cc.conv_encode(bits, reversed_taps, "term")
    )
    assert not np.array_equal(cc.conv_encode(bits, default, "term"), fec.conv_encode(bits))


# --- Viterbi vs commpy ----------------------------------------------------------------------


def test_viterbi_matches_commpy_at_moderate_snr():
    """At 3.5 dB both decoders must return the same bits on every block (both decode types)."""
    rng = np.random.default_rng(11)
    n = 200
    for _ in range(3):
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        llrs = _awgn_llrs(fec.conv_encode(bits), 3.5, 0.5, rng)
        ours = fec.viterbi_decode(llrs, n)
        soft = cc.viterbi_decode(-llrs.astype(np.float64), TR_80211, decoding_type="soft")[:n]
        unq = cc.viterbi_decode(-llrs.astype(np.float64), TR_80211, decoding_type="unquantized")[:n]
        np.testing.assert_array_equal(ours, soft)
        np.testing.assert_array_equal(ours, unq)


def test_viterbi_matches_commpy_on_noisy_blocks():
    """At 1.5 dB (real decoding errors), commpy with a long traceback window (60) must return
    our bits except near the block end, where it does not trace back from the zero state; our
    path metric is never worse than commpy's, and the errors both make are the same."""
    rng = np.random.default_rng(12)
    n, edge = 200, 12
    ours_err = both_wrong = 0
    for _ in range(5):
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        llrs = _awgn_llrs(fec.conv_encode(bits), 1.5, 0.5, rng)
        ours = fec.viterbi_decode(llrs, n)
        theirs = cc.viterbi_decode(
            -llrs.astype(np.float64), TR_80211, tb_depth=60, decoding_type="soft"
        )[:n].astype(np.uint8)
        np.testing.assert_array_equal(ours[: n - edge], theirs[: n - edge])
        tol = 1e-5 * float(np.abs(llrs).sum())  # float32 metrics inside the decoder
        assert _path_metric(llrs, ours) >= _path_metric(llrs, theirs) - tol
        assert _path_metric(llrs, ours) >= _path_metric(llrs, bits) - tol
        ours_err += int((ours != bits).sum())
        both_wrong += int(((ours != bits) & (theirs != bits)).sum())
    assert ours_err > 0  # the noise is strong enough for the comparison to mean something
    assert both_wrong == ours_err


def test_commpy_default_window_is_worse_not_better():
    """commpy's default traceback (30) is suboptimal at 1.5 dB: it never beats our ML path."""
    rng = np.random.default_rng(12)
    n = 200
    ours_err = theirs_err = 0
    for _ in range(3):
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        llrs = _awgn_llrs(fec.conv_encode(bits), 1.5, 0.5, rng)
        ours = fec.viterbi_decode(llrs, n)
        theirs = cc.viterbi_decode(-llrs.astype(np.float64), TR_80211, decoding_type="soft")[:n]
        assert _path_metric(llrs, ours) >= _path_metric(llrs, theirs.astype(np.uint8))
        ours_err += int((ours != bits).sum())
        theirs_err += int((theirs != bits).sum())
    assert ours_err < theirs_err


# --- round trips, puncturing ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 600), rate=st.sampled_from(fec.RATES), seed=st.integers(0, 2**32 - 1))
def test_noiseless_round_trip(n, rate, seed):
    bits = np.random.default_rng(seed).integers(0, 2, n, dtype=np.uint8)
    coded = fec.encode(bits, rate)
    assert coded.dtype == np.uint8 and coded.size == fec.coded_length(n, rate)
    llrs = (1.0 - 2.0 * coded).astype(np.float32) * 3.0
    out = fec.decode(llrs, rate, n)
    assert out.dtype == np.uint8 and out.shape == (n,)
    np.testing.assert_array_equal(out, bits)


@pytest.mark.parametrize("rate", fec.RATES)
@pytest.mark.parametrize("n", [0, 1])
def test_tiny_lengths(rate, n):
    bits = np.ones(n, dtype=np.uint8)
    llrs = 1.0 - 2.0 * fec.encode(bits, rate).astype(np.float32)
    np.testing.assert_array_equal(fec.decode(llrs, rate, n), bits)


def test_long_block_with_huge_llrs():
    """200k bits, LLRs near the clip limit: float32 metrics must neither overflow nor drift."""
    bits = np.random.default_rng(3).integers(0, 2, 200_000, dtype=np.uint8)
    llrs = (1.0 - 2.0 * fec.conv_encode(bits)).astype(np.float32) * 1e30
    np.testing.assert_array_equal(fec.viterbi_decode(llrs, bits.size), bits)


def test_metrics_do_not_lose_precision_after_a_long_strong_prefix():
    """100k zero bits with LLR 1e4, then a noisy 2000-bit segment: the segment must decode
    exactly as it does alone (the prefix ends in state 0), so float32 metrics stay normalized."""
    rng = np.random.default_rng(21)
    seg = rng.integers(0, 2, 2000, dtype=np.uint8)
    seg_llrs = _awgn_llrs(fec.conv_encode(seg), 2.0, 0.5, rng)
    prefix = np.full(200_000, 1e4, np.float32)
    alone = fec.viterbi_decode(seg_llrs, seg.size)
    joined = fec.viterbi_decode(np.concatenate([prefix, seg_llrs]), 100_000 + seg.size)
    assert (alone != seg).sum() > 0  # noisy enough that decisions are close calls
    assert not joined[:100_000].any()
    np.testing.assert_array_equal(joined[100_000:], alone)


def test_puncture_patterns():
    assert fec.puncture(np.arange(12), "1/2").tolist() == list(range(12))
    assert fec.puncture(np.arange(8), "2/3").tolist() == [0, 1, 2, 4, 5, 6]
    assert fec.puncture(np.arange(12), "3/4").tolist() == [0, 1, 2, 5, 6, 7, 8, 11]
    d = fec.depuncture(np.array([1, 2, 3, 4, 5, 6, 7, 8]), "3/4", 12)
    assert d.dtype == np.float32
    assert d.tolist() == [1, 2, 3, 0, 0, 4, 5, 6, 7, 0, 0, 8]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 1000, 1001])
def test_coded_length(n):
    assert fec.coded_length(n, "1/2") == 2 * (n + 6)
    assert fec.coded_length(n, "2/3") == int(np.ceil(2 * (n + 6) * 3 / 4))
    for rate in fec.RATES:
        assert fec.coded_length(n, rate) == fec.encode(np.zeros(n, np.uint8), rate).size
    assert fec.coded_length(0, "3/4") == 8
    assert fec.coded_length(6, "3/4") == 16


# --- BER over AWGN --------------------------------------------------------------------------


def _ber(rate: str, ebn0_db: float, n_bits: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    errors = 0
    block = 20_000
    for _ in range(n_bits // block):
        bits = rng.integers(0, 2, block, dtype=np.uint8)
        llrs = _awgn_llrs(fec.encode(bits, rate), ebn0_db, RATE_VALUE[rate], rng)
        errors += int((fec.decode(llrs, rate, block) != bits).sum())
    return errors / n_bits


def test_ber_rate_half_reference_points():
    # K=7 soft Viterbi: about 3e-5 at 4 dB, 4e-4 at 3 dB, 5e-3 at 2 dB.
    assert _ber("1/2", 4.0, 1_000_000, 1) < 1e-4
    assert _ber("1/2", 3.0, 400_000, 2) < 1e-3
    b2 = _ber("1/2", 2.0, 200_000, 3)
    assert 1e-3 < b2 < 2e-2  # not suspiciously good: the channel really is noisy


def test_ber_ordering_of_rates():
    """At 3 dB: BPSK uncoded 2.3e-2 > 3/4 > 2/3 > 1/2, each by a clear margin."""
    b = {r: _ber(r, 3.0, 400_000, 4) for r in fec.RATES}
    assert b["1/2"] * 2 < b["2/3"]
    assert b["2/3"] * 2 < b["3/4"]
    assert b["3/4"] < 2.3e-2 / 2
    assert _ber("2/3", 4.0, 1_000_000, 5) < 2e-4
    assert _ber("3/4", 5.0, 1_000_000, 6) < 1e-4


# --- errors, speed --------------------------------------------------------------------------


def test_error_cases():
    bits = np.zeros(10, np.uint8)
    good = np.zeros(fec.coded_length(10, "3/4"), np.float32)
    with pytest.raises(FecError, match="rate"):
        fec.encode(bits, "5/6")
    with pytest.raises(FecError, match="rate"):
        fec.decode(good, "1/3", 10)
    with pytest.raises(FecError, match="rate"):
        fec.coded_length(10, None)
    with pytest.raises(FecError, match="LLRs"):
        fec.decode(good[:-1], "3/4", 10)
    with pytest.raises(FecError, match="LLRs"):
        fec.decode(good, "1/2", 10)
    with pytest.raises(FecError, match="LLRs"):
        fec.viterbi_decode(np.zeros(31, np.float32), 10)
    with pytest.raises(FecError, match="finite"):
        fec.viterbi_decode(np.full(32, np.nan, np.float32), 10)
    with pytest.raises(FecError, match="n_info"):
        fec.viterbi_decode(np.zeros(10, np.float32), -1)
    with pytest.raises(FecError, match="0 and 1"):
        fec.conv_encode(np.array([0, 2, 1]))
    with pytest.raises(FecError, match="1-D"):
        fec.conv_encode(np.zeros((2, 3), np.uint8))
    with pytest.raises(FecError, match="needs"):
        fec.depuncture(np.zeros(5, np.float32), "3/4", 12)
    err = FecError("x")
    assert isinstance(err, ValueError) and isinstance(err, RadioError)
    assert isinstance(err, AirLoraError)


def test_decode_does_not_modify_input():
    llrs = np.full(fec.coded_length(5, "1/2"), 2e9, np.float32)
    before = llrs.copy()
    fec.decode(llrs, "1/2", 5)
    np.testing.assert_array_equal(llrs, before)

