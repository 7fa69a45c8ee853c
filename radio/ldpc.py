"""The IEEE 802.11n/ac quasi-cyclic LDPC codes: systematic encoder and layered normalized min-sum decoder.

Twelve codes: block lengths n = 648, 1296, 1944 (circulant size Z = 27, 54, 81) at rates 1/2, 2/3, 3/4,
5/6. Each parity-check matrix H is a 24-column prototype (radio/ldpc_tables.json, the published Annex R
tables) lifted by Z: an entry s >= 0 is the Z x Z identity cyclically shifted right by s (row r has its
1 in column (r + s) mod Z), -1 the zero block. Codewords are systematic: the k information bits first,
then n - k parity bits; the parity part's dual-diagonal structure gives a linear-time encoder.

Decoding is layered (one prototype row per layer) normalized min-sum on LLRs, compiled with numba, one
codeword after another in a batch, with early termination as soon as the hard decisions satisfy every
check (also before the first iteration: a clean codeword costs one syndrome pass).

A thirteenth, `code(3888, "1/4")`, is the n = 1944 rate-1/2 code extended raptor-like to rate 1/4 for the
lowest MCS: 24 more block rows, each a degree-1 parity block of its own plus two or three blocks of the core
codeword (the table's `extension` rows), so a codeword is the 1944-1/2 codeword followed by 1944 extra parity
bits. It was designed here by simulation (radio/ldpc_extension.py) and decodes with max_iterations >= 50
(EXTENDED_ITERATIONS): over bare BPSK it reaches BLER 1e-2 about 0.6 dB below sending the rate-1/2 codeword twice.

LLR convention as in radio.fec: ``llr = log(P(bit=0) / P(bit=1))``, positive means 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np

from radio.errors import FecError

TABLES_FILE = Path(__file__).with_name("ldpc_tables.json")
BLOCK_LENGTHS = (648, 1296, 1944)
RATES = ("1/2", "2/3", "3/4", "5/6")
PROTOTYPE_COLUMNS = 24
EXTENDED_ITERATIONS = 50  # the extended rate-1/4 code needs this many (20: BLER 0.26 where 50 gives 0.08)
DEFAULT_MAX_ITERATIONS = 20
DEFAULT_SCALE = 0.75  # normalized min-sum: check-to-variable magnitudes times this
LLR_LIMIT = 1e4  # input LLRs are clipped to +-this (float32 posteriors cannot overflow)


@dataclass(frozen=True, eq=False)
class LdpcCode:
    """One lifted QC-LDPC code with the index arrays its encoder and decoder walk.

    base: (mb, 24) int16 prototype (shift or -1). The non-empty blocks, layer (prototype row) by layer:
    `block_col`, `block_shift` (nb,) int32 and `layer_block` (mb + 1,) the first block of each layer (the
    decoder's layout). The edges (ones of H) layer by layer, then check row r = 0..Z-1, then block:
    `edge_var` (E,) int32 variable index, `layer_edge` (mb + 1,) first edge of each layer, `layer_degree`
    (mb,) check degree of the layer's rows (the syndrome check's layout).
    """

    n: int
    rate: str
    z: int
    base: np.ndarray
    block_col: np.ndarray
    block_shift: np.ndarray
    layer_block: np.ndarray
    edge_var: np.ndarray
    layer_edge: np.ndarray
    layer_degree: np.ndarray
    core: LdpcCode | None = None  # an extended code's 802.11n core (its codeword is the core's, then more parity)

    @property
    def name(self) -> str:
        """'ldpc648-1/2' etc."""
        return f"ldpc{self.n}-{self.rate}"

    @property
    def k(self) -> int:
        """Information bits per codeword."""
        return self.n - self.m

    @property
    def m(self) -> int:
        """Parity checks (rows of H)."""
        return self.base.shape[0] * self.z

    @property
    def code_rate(self) -> float:
        return self.k / self.n

    @property
    def edges(self) -> int:
        """Ones in H."""
        return int(self.edge_var.size)

    def __repr__(self) -> str:
        return f"LdpcCode({self.name}, n={self.n}, k={self.k}, Z={self.z})"


@lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads(TABLES_FILE.read_text())["codes"]


def _check_structure(base: np.ndarray, z: int, name: str) -> None:
    """The encoder relies on the 802.11n parity part: column kb with shifts (1 at the top and bottom
    rows, 0 once in between, nothing else) and the dual diagonal of zero shifts after it."""
    mb, nb = base.shape
    kb = nb - mb
    if nb != PROTOTYPE_COLUMNS or np.any(base < -1) or np.any(base >= z):
        raise FecError(f"{name}: prototype must be 24 columns of shifts in -1..{z - 1}")
    x = base[:, kb]
    hits = np.flatnonzero(x >= 0)
    if hits.size != 3 or hits[0] != 0 or hits[-1] != mb - 1 or x[0] != x[-1] or x[hits[1]] != 0:
        raise FecError(f"{name}: first parity column is not the 802.11n (s, 0, s) column")
    dual = base[:, kb + 1:]
    expected = np.full((mb, mb - 1), -1)
    expected[np.arange(mb - 1), np.arange(mb - 1)] = 0
    expected[np.arange(1, mb), np.arange(mb - 1)] = 0
    if not np.array_equal(dual, expected):
        raise FecError(f"{name}: parity part is not dual-diagonal")


@lru_cache(maxsize=None)
def code(n: int, rate: str) -> LdpcCode:
    """The 802.11n code of block length n (648, 1296, 1944) at rate '1/2', '2/3', '3/4' or '5/6', or the extended
    n = 3888 rate '1/4' code (the 1944-1/2 code plus 1944 raptor-like parity bits)."""
    key = f"{n}-{rate}"
    table = _tables().get(key)
    if table is None:
        raise FecError(f"no 802.11n LDPC code n={n} rate {rate!r}; n in {BLOCK_LENGTHS}, rate in {RATES} "
                       "(or the extended n=3888 rate '1/4')")
    if "core" in table:
        return _extended(n, rate, table)
    z = int(table["z"])
    base = np.array([[int(t) for t in row.split()] for row in table["base"]], np.int16)
    if z * PROTOTYPE_COLUMNS != n:
        raise FecError(f"{key}: Z = {z} does not make n = {n}")
    _check_structure(base, z, key)
    return _lifted(n, rate, z, base)


def _extended(n: int, rate: str, table: dict) -> LdpcCode:
    """A core code extended by rows of (shifts over the core's columns) + an identity block on a new column each."""
    core_n, core_rate = table["core"].split("-")
    core = code(int(core_n), core_rate)
    rows = np.array([[int(t) for t in row.split()] for row in table["extension"]], np.int16)
    e, cols = rows.shape if rows.ndim == 2 else (0, 0)
    if e == 0 or cols != PROTOTYPE_COLUMNS or np.any(rows < -1) or np.any(rows >= core.z) \
            or core.n + e * core.z != n:
        raise FecError(f"{n}-{rate}: extension rows must be 24 shifts in -1..{core.z - 1} over the core's columns, "
                       f"as many as make n = {n}")
    mb = core.base.shape[0]
    base = np.full((mb + e, PROTOTYPE_COLUMNS + e), -1, np.int16)
    base[:mb, :PROTOTYPE_COLUMNS] = core.base
    base[mb:, :PROTOTYPE_COLUMNS] = rows
    base[mb + np.arange(e), PROTOTYPE_COLUMNS + np.arange(e)] = 0
    return _lifted(n, rate, core.z, base, core)


def _lifted(n: int, rate: str, z: int, base: np.ndarray, core: LdpcCode | None = None) -> LdpcCode:
    """The index arrays of base lifted by z (see LdpcCode)."""
    edge_var: list[np.ndarray] = []
    layer_edge = [0]
    degrees = []
    block_col: list[int] = []
    block_shift: list[int] = []
    layer_block = [0]
    r = np.arange(z)
    for row in base:
        cols = np.flatnonzero(row >= 0)
        block_col += cols.tolist()
        block_shift += row[cols].tolist()
        layer_block.append(len(block_col))
        # (z, d): check row r of this layer meets variable j * z + (r + s) mod z in block column j
        var = cols[None, :] * z + (r[:, None] + row[cols][None, :]) % z
        edge_var.append(var.ravel())
        layer_edge.append(layer_edge[-1] + var.size)
        degrees.append(cols.size)
    arrays = [np.array(block_col, np.int32), np.array(block_shift, np.int32), np.array(layer_block, np.int32),
              np.concatenate(edge_var).astype(np.int32), np.array(layer_edge, np.int32), np.array(degrees, np.int32)]
    for a in (base, *arrays):
        a.flags.writeable = False
    return LdpcCode(n, rate, z, base, *arrays, core=core)


def codes() -> tuple[LdpcCode, ...]:
    """All twelve codes, by block length then rate."""
    return tuple(code(n, rate) for n in BLOCK_LENGTHS for rate in RATES)


def parity_check_matrix(c: LdpcCode) -> np.ndarray:
    """Dense (m, n) uint8 H (for tests and oracles; the decoder never builds it)."""
    h = np.zeros((c.m, c.n), np.uint8)
    rows = np.repeat(np.arange(c.m), np.repeat(c.layer_degree, c.z))
    h[rows, c.edge_var] = 1
    return h


def _as_batch(x: np.ndarray, width: int, what: str) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    single = x.ndim == 1
    x = x[None, :] if single else x
    if x.ndim != 2 or x.shape[1] != width:
        raise FecError(f"{what} must have shape ({width},) or (batch, {width}), got {np.shape(x)}")
    return x, single


def encode(c: LdpcCode, info: np.ndarray) -> np.ndarray:
    """Systematic codewords: (k,) or (b, k) bits 0/1 -> (n,) or (b, n) uint8, information bits first.

    Block rows i of H give lambda_i = sum_j P^{s_ij} u_j (u_j the info blocks); summing them all leaves
    the first parity block p_0 = sum_i lambda_i, and the dual diagonal gives the rest one after another:
    p_{i+1} = p_i + lambda_i + P^{x_i} p_0.
    """
    u, single = _as_batch(info, c.k, "info bits")
    if u.size and (u.dtype.kind not in "biu" or u.min() < 0 or u.max() > 1):
        raise FecError("info bits must contain only integers 0 and 1")
    if c.core is not None:
        out = _extend(c, encode(c.core, u))
        return out[0] if single else out
    z, mb = c.z, c.base.shape[0]
    kb = PROTOTYPE_COLUMNS - mb
    blocks = u.astype(np.uint8).reshape(u.shape[0], kb, z)
    lam = np.zeros((u.shape[0], mb, z), np.uint8)
    for i in range(mb):
        for j in range(kb):
            s = int(c.base[i, j])
            if s >= 0:  # (P^s v)[r] = v[(r + s) mod z]
                lam[:, i] ^= np.roll(blocks[:, j], -s, axis=1)
    parity = np.empty_like(lam)
    parity[:, 0] = np.bitwise_xor.reduce(lam, axis=1)
    for i in range(mb - 1):
        p = lam[:, i] ^ (parity[:, i] if i else 0)
        s = int(c.base[i, kb])
        if s >= 0:
            p = p ^ np.roll(parity[:, 0], -s, axis=1)
        parity[:, i + 1] = p
    out = np.concatenate([u.astype(np.uint8), parity.reshape(u.shape[0], -1)], axis=1)
    return out[0] if single else out


def _extend(c: LdpcCode, inner: np.ndarray) -> np.ndarray:
    """(b, core n) core codewords -> (b, n): each extension row's parity block is the sum of its core blocks."""
    z, mb, cols = c.z, c.core.base.shape[0], PROTOTYPE_COLUMNS
    blocks = inner.reshape(inner.shape[0], cols, z)
    rows = c.base[mb:, :cols]
    parity = np.zeros((inner.shape[0], rows.shape[0], z), np.uint8)
    for i, row in enumerate(rows):
        for j in np.flatnonzero(row >= 0):
            parity[:, i] ^= np.roll(blocks[:, j], -int(row[j]), axis=1)
    return np.concatenate([inner, parity.reshape(inner.shape[0], -1)], axis=1)


@numba.njit(cache=True)
def _syndrome_ok(bits: np.ndarray, edge_var: np.ndarray, layer_edge: np.ndarray,
                 layer_degree: np.ndarray, z: int) -> bool:
    """True when every check of the hard decisions bits (n,) uint8 is satisfied (stops at the first failure)."""
    for layer in range(layer_degree.size):
        d = layer_degree[layer]
        e = layer_edge[layer]
        for _ in range(z):
            parity = 0
            for t in range(d):
                parity ^= bits[edge_var[e + t]]
            if parity:
                return False
            e += d
    return True


@numba.njit(cache=True)
def _decode_kernel(llr: np.ndarray, block_col: np.ndarray, block_shift: np.ndarray, layer_block: np.ndarray,
                   edge_var: np.ndarray, layer_edge: np.ndarray, layer_degree: np.ndarray, z: int,
                   max_iterations: int, scale: float, offset: float,
                   bits: np.ndarray, ok: np.ndarray, iterations: np.ndarray) -> None:
    """Layered normalized/offset min-sum over a batch. llr (b, n) float32 clipped; outputs in place:
    bits (b, n) uint8 hard decisions, ok (b,) syndrome satisfied, iterations (b,) int32 used.

    The Z check rows of a layer are independent, so each layer is worked on Z rows at once: for each of
    its blocks (block column j, shift s) the Z posteriors it touches, post[j Z + (r + s) mod Z] for
    r = 0..Z-1, are two contiguous runs; the row minima, second minima and signs are kept per r, and
    every inner loop runs over r on contiguous arrays (vectorized by the compiler).
    """
    batch, n = llr.shape
    n_blocks = block_col.size
    max_degree = 0
    for layer in range(layer_block.size - 1):
        max_degree = max(max_degree, layer_block[layer + 1] - layer_block[layer])
    post = np.empty(n, np.float32)
    msg = np.empty((n_blocks, z), np.float32)  # check-to-variable messages, per block and row
    q = np.empty((max_degree, z), np.float32)  # variable-to-check messages of the layer in work
    min1 = np.empty(z, np.float32)
    min2 = np.empty(z, np.float32)
    arg = np.empty(z, np.int32)
    sign = np.empty(z, np.int32)
    hard = np.empty(n, np.uint8)
    sc = np.float32(scale)
    off = np.float32(offset)
    zero = np.float32(0.0)
    for b in range(batch):
        for v in range(n):
            post[v] = llr[b, v]
            hard[v] = 1 if post[v] < 0 else 0
        done = _syndrome_ok(hard, edge_var, layer_edge, layer_degree, z)
        it = 0
        if not done:
            msg[:] = 0
        while not done and it < max_iterations:
            it += 1
            for layer in range(layer_block.size - 1):
                b0 = layer_block[layer]
                d = layer_block[layer + 1] - b0
                for r in range(z):
                    min1[r] = np.inf
                    min2[r] = np.inf
                    arg[r] = 0
                    sign[r] = 0
                for t in range(d):
                    base = block_col[b0 + t] * z
                    s = block_shift[b0 + t]
                    m = msg[b0 + t]
                    qt = q[t]
                    for r in range(z - s):
                        qt[r] = post[base + r + s] - m[r]
                    for r in range(z - s, z):
                        qt[r] = post[base + r + s - z] - m[r]
                    for r in range(z):
                        x = qt[r]
                        a = abs(x)
                        lower = a < min1[r]
                        min2[r] = min1[r] if lower else min(a, min2[r])
                        min1[r] = a if lower else min1[r]
                        arg[r] = t if lower else arg[r]
                        sign[r] ^= 1 if x < 0 else 0
                for r in range(z):
                    min1[r] = max(sc * min1[r] - off, zero)
                    min2[r] = max(sc * min2[r] - off, zero)
                for t in range(d):
                    base = block_col[b0 + t] * z
                    s = block_shift[b0 + t]
                    m = msg[b0 + t]
                    qt = q[t]
                    for r in range(z):
                        x = qt[r]
                        mag = min2[r] if arg[r] == t else min1[r]
                        y = -mag if sign[r] ^ (1 if x < 0 else 0) else mag
                        m[r] = y
                        qt[r] = x + y
                    for r in range(z - s):
                        post[base + r + s] = qt[r]
                    for r in range(z - s, z):
                        post[base + r + s - z] = qt[r]
            for v in range(n):
                hard[v] = 1 if post[v] < 0 else 0
            done = _syndrome_ok(hard, edge_var, layer_edge, layer_degree, z)
        bits[b, :] = hard
        ok[b] = done
        iterations[b] = it


@dataclass(frozen=True)
class LdpcResult:
    """Decoded batch: bits (b, k) uint8 information bits, ok (b,) every check satisfied, iterations (b,)."""

    bits: np.ndarray
    ok: np.ndarray
    iterations: np.ndarray
    codewords: np.ndarray  # (b, n) uint8 hard decisions of the whole codeword


def decode(c: LdpcCode, llr: np.ndarray, max_iterations: int = DEFAULT_MAX_ITERATIONS,
           scale: float = DEFAULT_SCALE, offset: float = 0.0) -> LdpcResult:
    """Decode (n,) or (b, n) LLRs (log P0/P1, finite) with layered min-sum; stops per codeword once the
    syndrome is zero. `ok` false means the decoder gave up: treat the codeword as an erasure."""
    x, _ = _as_batch(llr, c.n, "LLRs")
    if not 0 <= max_iterations <= 1000:
        raise FecError(f"max_iterations must be in 0..1000, got {max_iterations}")
    if not (0.0 < scale <= 1.0 and 0.0 <= offset < LLR_LIMIT):
        raise FecError(f"scale must be in (0, 1] and offset >= 0, got {scale}, {offset}")
    if x.size and not np.all(np.isfinite(x)):
        raise FecError("LLRs must be finite (no NaN or inf)")
    x = np.ascontiguousarray(np.clip(x, -LLR_LIMIT, LLR_LIMIT), np.float32)
    batch = x.shape[0]
    bits = np.empty((batch, c.n), np.uint8)
    ok = np.empty(batch, np.bool_)
    iterations = np.empty(batch, np.int32)
    _decode_kernel(x, c.block_col, c.block_shift, c.layer_block, c.edge_var, c.layer_edge, c.layer_degree, c.z,
                   int(max_iterations), float(scale), float(offset), bits, ok, iterations)
    return LdpcResult(bits[:, : c.k].copy(), ok, iterations, bits)


def syndrome_ok(c: LdpcCode, codewords: np.ndarray) -> np.ndarray:
    """(b,) bool: which (b, n) (or (n,)) hard codewords satisfy every parity check."""
    w, _ = _as_batch(codewords, c.n, "codewords")
    w = np.ascontiguousarray(w, np.uint8)
    return np.array([_syndrome_ok(row, c.edge_var, c.layer_edge, c.layer_degree, c.z) for row in w], bool)
