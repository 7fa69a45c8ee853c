"""Forward error correction: the 802.11 K=7 convolutional code with puncturing and soft Viterbi.

Mother code: rate 1/2, generators 0o133 (output A) and 0o171 (output B), MSB = tap on the current
input bit (the 802.11 / MATLAB ``poly2trellis`` convention). The encoder starts in state 0 and
appends 6 zero tail bits. Mother-code output is serialized A0 B0 A1 B1 ...; puncturing patterns
are those of 802.11a applied periodically to that stream (a trailing partial period keeps the
pattern's prefix).

LLR convention everywhere: ``llr = log(P(bit=0) / P(bit=1))``, positive means 0.
"""

from __future__ import annotations

import time

import numba
import functools

import numpy as np

from radio.errors import FecError

K = 7
MEMORY = K - 1
G_A = 0o133
G_B = 0o171
RATES = ("1/2", "2/3", "3/4")
LLR_LIMIT = 1e6

# Keep-masks over one period of the serialized mother stream (A0 B0 A1 B1 A2 B2 ...).
_PATTERNS = {
    "1/2": np.array([1, 1], dtype=bool),
    "2/3": np.array([1, 1, 1, 0], dtype=bool),  # A0 B0 A1 (B1 dropped)
    "3/4": np.array([1, 1, 1, 0, 0, 1], dtype=bool),  # A0 B0 A1 B2 (B1, A2 dropped)
}


def _taps(gen: int) -> np.ndarray:
    """Impulse response h[i] = tap on u[t-i], shape (K,), int32."""
    return np.array([(gen >> (MEMORY - i)) & 1 for i in range(K)], dtype=np.int32)


_H_A = _taps(G_A)
_H_B = _taps(G_B)


def _pattern(rate: str) -> np.ndarray:
    try:
        return _PATTERNS[rate]
    except (KeyError, TypeError):
        raise FecError(f"unknown code rate {rate!r}; expected one of {RATES}") from None


def _mask(rate: str, n_mother: int) -> np.ndarray:
    """Keep-mask of length n_mother, bool (read-only, cached per length)."""
    return _cached_mask(_pattern(rate).tobytes(), n_mother)


@functools.lru_cache(maxsize=256)
def _cached_mask(pattern: bytes, n_mother: int) -> np.ndarray:
    base = np.frombuffer(pattern, dtype=bool)
    mask = np.tile(base, -(-n_mother // base.size))[:n_mother]
    mask.flags.writeable = False
    return mask


def _check_bits(bits: np.ndarray) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.ndim != 1:
        raise FecError(f"bits must be a 1-D array, got shape {bits.shape}")
    if bits.size and (bits.dtype.kind not in "biu" or bits.min() < 0 or bits.max() > 1):
        raise FecError("bits must contain only integers 0 and 1")
    return bits.astype(np.uint8, copy=False)


def _check_n_info(n_info: int) -> int:
    if not isinstance(n_info, (int, np.integer)) or isinstance(n_info, bool) or n_info < 0:
        raise FecError(f"n_info must be a non-negative integer, got {n_info!r}")
    return int(n_info)


def mother_length(n_info: int) -> int:
    """Number of mother-code bits for n_info info bits: 2 * (n_info + 6)."""
    return 2 * (_check_n_info(n_info) + MEMORY)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Encode with the terminated K=7 mother code.

    bits: uint8 0/1, shape (n,). Returns uint8 0/1, shape (2 * (n + 6),), ordered A0 B0 A1 B1 ...
    """
    u = np.zeros(_check_bits(bits).size + MEMORY, dtype=np.int32)
    u[: u.size - MEMORY] = bits
    out = np.empty(2 * u.size, dtype=np.uint8)
    out[0::2] = np.convolve(u, _H_A)[: u.size] & 1
    out[1::2] = np.convolve(u, _H_B)[: u.size] & 1
    return out


def coded_length(n_info: int, rate: str) -> int:
    """Exact number of bits on air for n_info info bits at this rate (tail included)."""
    pat = _pattern(rate)
    n_mother = mother_length(n_info)
    full, rest = divmod(n_mother, pat.size)
    return int(full * pat.sum() + pat[:rest].sum())


def puncture(coded: np.ndarray, rate: str) -> np.ndarray:
    """Drop mother-code positions per the rate's pattern. coded: shape (n_mother,) -> (n_air,)."""
    coded = np.asarray(coded)
    if coded.ndim != 1:
        raise FecError(f"coded must be a 1-D array, got shape {coded.shape}")
    return coded[_mask(rate, coded.size)]


def depuncture(values: np.ndarray, rate: str, n_mother: int) -> np.ndarray:
    """Re-insert erased positions as 0.0 LLR. values: shape (n_air,) -> float32 (n_mother,)."""
    values = np.asarray(values)
    mask = _mask(rate, n_mother)
    n_kept = int(mask.sum())
    if values.ndim != 1 or values.size != n_kept:
        raise FecError(
            f"rate {rate} with {n_mother} mother-code bits needs {n_kept} values, "
            f"got shape {values.shape}"
        )
    out = np.zeros(n_mother, dtype=np.float32)
    out[mask] = values
    return out


def encode(bits: np.ndarray, rate: str) -> np.ndarray:
    """conv_encode + puncture. bits: uint8 (n,) -> uint8 (coded_length(n, rate),)."""
    _pattern(rate)
    return puncture(conv_encode(bits), rate)


def decode(llrs: np.ndarray, rate: str, n_info: int) -> np.ndarray:
    """depuncture + Viterbi. llrs: (coded_length(n_info, rate),) -> uint8 bits (n_info,)."""
    n_info = _check_n_info(n_info)
    llrs = np.asarray(llrs)
    expected = coded_length(n_info, rate)
    if llrs.ndim != 1 or llrs.size != expected:
        raise FecError(
            f"rate {rate} with n_info={n_info} needs {expected} LLRs, got shape {llrs.shape}"
        )
    return viterbi_decode(depuncture(llrs, rate, mother_length(n_info)), n_info)


def _butterfly_signs() -> np.ndarray:
    """Per j in 0..31: output bits (A, B) of predecessor 2j with input 0, as int8 0..3 (A*2+B).

    Both generators tap u[t] and u[t-6], so the other three branches of the butterfly
    (2j+1 -> j, 2j -> j+32, 2j+1 -> j+32) carry this output or its complement.
    """
    out = np.empty(32, dtype=np.int8)
    for j in range(32):
        reg = (2 * j) & 0x3F  # bit 5 = u[t-1] ... bit 0 = u[t-6]; u[t] = 0
        a = bin(reg & G_A).count("1") & 1
        b = bin(reg & G_B).count("1") & 1
        out[j] = 2 * a + b
    return out


_BFLY = _butterfly_signs()


@numba.njit(cache=True)
def _viterbi_kernel(llrs: np.ndarray, n_steps: int, bfly: np.ndarray) -> np.ndarray:
    """Soft Viterbi over the terminated trellis.

    State s = (u[t-1] << 5) | ... | u[t-6]; next state = (s >> 1) | (u << 5).
    llrs: float32 (2 * n_steps,). Returns uint8 input bits (n_steps,), tail included.
    Path metric: sum of llr * (1 - 2c) over the path, maximized; survivor bit = dropped LSB.
    """
    ninf = np.float32(-np.inf)
    pm = np.full(64, ninf, dtype=np.float32)
    pm[0] = np.float32(0.0)
    new = np.empty(64, dtype=np.float32)
    dec = np.empty((n_steps, 64), dtype=np.uint8)
    bm4 = np.empty(4, dtype=np.float32)
    for t in range(n_steps):
        la = llrs[2 * t]
        lb = llrs[2 * t + 1]
        bm4[0] = la + lb
        bm4[1] = la - lb
        bm4[2] = -la + lb
        bm4[3] = -la - lb
        row = dec[t]
        for j in range(32):
            bm = bm4[bfly[j]]
            p0 = pm[2 * j]
            p1 = pm[2 * j + 1]
            # next state j (input 0): from 2j with +bm, from 2j+1 with -bm
            m0 = p0 + bm
            m1 = p1 - bm
            if m1 > m0:
                new[j] = m1
                row[j] = 1
            else:
                new[j] = m0
                row[j] = 0
            # next state j+32 (input 1): from 2j with -bm, from 2j+1 with +bm
            m0 = p0 - bm
            m1 = p1 + bm
            if m1 > m0:
                new[j + 32] = m1
                row[j + 32] = 1
            else:
                new[j + 32] = m0
                row[j + 32] = 0
        # Normalize to keep float32 metrics small; state 0 is always reachable.
        ref = new[0]
        for s in range(64):
            pm[s] = new[s] - ref
    out = np.empty(n_steps, dtype=np.uint8)
    s = 0
    for t in range(n_steps - 1, -1, -1):
        out[t] = s >> 5
        s = ((s & 31) << 1) | dec[t, s]
    return out


def viterbi_decode(llrs: np.ndarray, n_info: int) -> np.ndarray:
    """Soft-decision Viterbi of the terminated mother code, traceback from state 0.

    llrs: float (2 * (n_info + 6),), log(P0/P1), 0.0 = erased; clipped to +-LLR_LIMIT so the
    float32 metrics cannot overflow. Returns uint8 bits (n_info,).
    """
    n_info = _check_n_info(n_info)
    llrs = np.asarray(llrs)
    expected = mother_length(n_info)
    if llrs.ndim != 1 or llrs.size != expected:
        raise FecError(
            f"n_info={n_info} needs {expected} mother-code LLRs, got shape {llrs.shape}"
        )
    if llrs.size and not np.all(np.isfinite(llrs)):
        raise FecError("LLRs must be finite (no NaN or inf)")
    llrs = np.clip(llrs, -LLR_LIMIT, LLR_LIMIT).astype(np.float32)
    return _viterbi_kernel(llrs, n_info + MEMORY, _BFLY)[:n_info].copy()


def benchmark_viterbi(n_info: int = 200_000) -> dict:
    """Time viterbi_decode on noisy BPSK LLRs after a warm-up call; one core, seeded."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, n_info, dtype=np.uint8)
    x = 1.0 - 2.0 * conv_encode(bits)
    llrs = (2.0 * (x + 0.7 * rng.standard_normal(x.size))).astype(np.float32)
    viterbi_decode(llrs[: 2 * (1000 + MEMORY)], 1000)
    t0 = time.perf_counter()
    viterbi_decode(llrs, n_info)
    seconds = time.perf_counter() - t0
    return {"info_bits": n_info, "seconds": seconds, "bits_per_s": n_info / seconds}
