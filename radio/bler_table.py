"""Measure codeword BLER curves of the LDPC MCS family over AWGN (`airlora mcs-table --family ldpc`).

What carries the codewords is pluggable (`CodewordLink`): `symbol_link` goes payload -> codeword.encode ->
map_bits -> AWGN at Es/N0 = SNR -> demap_llr -> codeword.decode (filler forced, CRC checked); a link
through the full v2 burst receiver can replace it and write `"level": "receiver"`. The grid is measured in
two passes per MCS: a coarse one (about 1 dB apart, few codewords) finds the waterfall, a fine one (every
grid point there) counts codewords until `target_errors` errors or `max_codewords`, and keeps going up
until a point sees no error at all. Points not measured are filled by linear interpolation of the measured
ones (1 below the waterfall, 0 above); `codewords_measured` says which are which (0: filled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radio import codeword
from radio.ber import bicm_limit_esn0_db
from radio.mcs import BLER_CURVES_FILE, Mcs, family_table, ldpc_code
from radio.modulation import constellation, demap_llr, map_bits

CodewordLink = Callable[[Mcs, float, int, np.random.Generator], np.ndarray]
"""(mcs, snr_db, count, rng) -> (count,) bool: which of `count` random codewords sent at SNR were lost."""

TARGET_BLER = 1e-2  # the gap to the Shannon limit is reported at this BLER


def symbol_link(mcs: Mcs, snr_db: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Codewords over AWGN at the symbol level (Es/N0 = snr_db per sent symbol); repeats sum their LLRs."""
    c = ldpc_code(mcs)
    cons = constellation(mcs.modulation)
    payload = rng.integers(0, 256, count * codeword.bytes_per_codeword(c), dtype=np.uint8)
    x = map_bits(codeword.encode(c, payload, count=count).ravel(), cons)
    n0 = float(10.0 ** (-snr_db / 10.0))
    llr = np.zeros(x.size * cons.bits_per_symbol, np.float32)
    for _ in range(mcs.repeat):
        noise = rng.standard_normal((2, x.size), dtype=np.float32) * np.float32(np.sqrt(n0 / 2.0))
        llr += demap_llr(x + (noise[0] + 1j * noise[1]).astype(np.complex64), n0, cons)
    result = codeword.decode(c, llr.reshape(count, c.n))
    sent = payload.reshape(count, -1)
    return ~(result.ok & np.all(result.data == sent, axis=1))


@dataclass(frozen=True)
class MeasurePlan:
    """How many codewords go where."""

    coarse_step_db: float = 1.0
    """spacing of the first pass that finds each waterfall"""
    coarse_codewords: int = 100
    """codewords per point of the first pass"""
    max_codewords: int = 10000
    """at most this many codewords per fine point (BLER down to ~1e-3 with ~10 errors)"""
    target_errors: int = 100
    """a fine point stops once it has seen this many errors"""
    batch: int = 500
    """codewords per call of the link"""
    fill_bler: float = 0.95
    """the fine pass starts at the last coarse point at or above this BLER"""


def _rng(seed: int, mcs: Mcs, snr_db: float, phase: int) -> np.random.Generator:
    """A generator per (seed, MCS, point, pass): results do not depend on order or on worker count."""
    return np.random.default_rng([seed, mcs.index, int(round(100 * snr_db)) + 100_000, phase])


def count_errors(link: CodewordLink, mcs: Mcs, snr_db: float, plan: MeasurePlan, rng: np.random.Generator,
                 max_codewords: int | None = None) -> tuple[int, int]:
    """(errors, codewords) at one point: batches until target_errors or max_codewords."""
    limit = plan.max_codewords if max_codewords is None else max_codewords
    errors = sent = 0
    while sent < limit and errors < plan.target_errors:
        count = min(plan.batch, limit - sent)
        errors += int(np.count_nonzero(link(mcs, snr_db, count, rng)))
        sent += count
    return errors, sent


def coarse_points(grid_db: np.ndarray, step_db: float) -> list[int]:
    """Indices of grid points at least step_db apart, from the first point (the last point always in)."""
    picked = [0]
    for i in range(1, len(grid_db)):
        if grid_db[i] - grid_db[picked[-1]] >= step_db - 1e-9:
            picked.append(i)
    if picked[-1] != len(grid_db) - 1:
        picked.append(len(grid_db) - 1)
    return picked


def measure_mcs(mcs: Mcs, grid_db: np.ndarray, plan: MeasurePlan, seed: int,
                link: CodewordLink = symbol_link) -> tuple[list[float], list[int]]:
    """BLER of one MCS on the grid and the codewords measured per point (0 where interpolated)."""
    grid_db = np.asarray(grid_db, float)
    measured: dict[int, tuple[int, int]] = {}
    zeros = 0
    for i in coarse_points(grid_db, plan.coarse_step_db):
        if zeros >= 2:  # two clean coarse points: the rest of the grid is above the waterfall
            break
        errors, sent = count_errors(link, mcs, grid_db[i], plan, _rng(seed, mcs, grid_db[i], 0),
                                    plan.coarse_codewords)
        measured[i] = (errors, sent)
        zeros = zeros + 1 if errors == 0 else 0
    coarse = sorted(measured)
    high = [i for i in coarse if measured[i][0] >= plan.fill_bler * measured[i][1]]
    start = high[-1] if high else 0
    for i in range(start, len(grid_db)):
        errors, sent = count_errors(link, mcs, grid_db[i], plan, _rng(seed, mcs, grid_db[i], 1))
        measured[i] = (errors, sent)
        if errors == 0:
            break
    index = np.array(sorted(measured))
    bler = np.array([measured[i][0] / measured[i][1] for i in index])
    values = np.interp(np.arange(len(grid_db)), index, bler)
    codewords = [measured[i][1] if i in measured else 0 for i in range(len(grid_db))]
    return [float(v) for v in values], codewords


def shannon_limit_db(mcs: Mcs) -> float:
    """Es/N0 (dB) where the BICM capacity of the MCS's constellation equals its information bits per symbol."""
    return bicm_limit_esn0_db(mcs.modulation, mcs.info_bits_per_symbol)


def crossing_db(snr_db: list[float] | np.ndarray, bler: list[float] | np.ndarray,
                target: float = TARGET_BLER) -> float:
    """Lowest SNR where the curve falls to `target` (log10-interpolated); inf when it never does."""
    s = np.asarray(snr_db, float)
    b = np.clip(np.asarray(bler, float), 1e-6, 1.0)
    below = np.flatnonzero(b <= target)
    if below.size == 0:
        return float("inf")
    i = int(below[0])
    if i == 0:
        return float(s[0])
    y0, y1, yt = np.log10(b[i - 1]), np.log10(b[i]), np.log10(target)
    return float(s[i - 1] + (s[i] - s[i - 1]) * (y0 - yt) / (y0 - y1))


def gap_table(curves: dict, target: float = TARGET_BLER) -> dict[str, tuple[float, float, float]]:
    """name -> (Es/N0 at BLER target, Shannon limit, gap) in dB for every LDPC MCS in the curves."""
    out = {}
    for mcs in family_table("ldpc"):
        if mcs.name in curves["bler"]:
            at = crossing_db(curves["snr_db"], curves["bler"][mcs.name], target)
            limit = shannon_limit_db(mcs)
            out[mcs.name] = (at, limit, at - limit)
    return out


def _measure_one(args: tuple[Mcs, np.ndarray, MeasurePlan, int, CodewordLink]) -> tuple[list[float], list[int]]:
    return measure_mcs(*args)


def measure(grid_db: np.ndarray, plan: MeasurePlan = MeasurePlan(), seed: int = 1, link: CodewordLink = symbol_link,
            level: str = "symbols", workers: int = 1, progress: Callable[[Mcs, list[float]], None] | None = None,
            mcs_list: tuple[Mcs, ...] | None = None) -> dict:
    """BLER curves of every LDPC MCS (or `mcs_list`) on the grid, as written to radio/mcs_bler_curves.json."""
    grid = np.round(np.asarray(grid_db, float), 6)
    table = mcs_list or family_table("ldpc")
    t0 = time.perf_counter()
    jobs = [(m, grid, plan, seed, link) for m in table]
    results: list[tuple[list[float], list[int]]] = []
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as pool:
            for job, result in zip(jobs, pool.map(_measure_one, jobs)):
                results.append(result)
                if progress:
                    progress(job[0], result[0])
    else:
        for job in jobs:
            results.append(_measure_one(job))
            if progress:
                progress(job[0], results[-1][0])
    return {
        "level": level,
        "channel": "awgn",
        "code_n": table[0].code_n,
        "snr_db": [float(s) for s in grid],
        "bler": {m.name: r[0] for m, r in zip(table, results)},
        "codewords_measured": {m.name: r[1] for m, r in zip(table, results)},
        "codewords": plan.max_codewords,
        "target_errors": plan.target_errors,
        "seed": seed,
        "limits_db": {m.name: round(shannon_limit_db(m), 3) for m in table},
        "measured_s": round(time.perf_counter() - t0, 1),
        "command": "airlora mcs-table --family ldpc",
    }


def write(curves: dict, path: Path = BLER_CURVES_FILE) -> None:
    """The curves as JSON (one MCS per line for readable diffs)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in curves.items() if not isinstance(v, dict)]
    for key in ("bler", "codewords_measured", "limits_db"):
        if key in curves:
            inner = ",\n".join(f"    {json.dumps(n)}: {json.dumps(v)}" for n, v in curves[key].items())
            lines.append(f"  {json.dumps(key)}: {{\n{inner}\n  }}")
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def plot(curves: dict, path: str | Path) -> None:
    """PNG: BLER per MCS against Es/N0, each with a dashed vertical line at its Shannon (BICM) limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 1.0)
    snr = np.asarray(curves["snr_db"], float)
    names = [m for m in family_table("ldpc") if m.name in curves["bler"]]
    colors = plt.cm.viridis(np.linspace(0, 0.95, len(names)))
    for mcs, color in zip(names, colors):
        bler = np.asarray(curves["bler"][mcs.name], float)
        keep = (bler > 0) & (bler < 1)
        ax.plot(snr[keep], bler[keep], ".-", color=color, label=mcs.name.removeprefix("ldpc-"))
        ax.axvline(shannon_limit_db(mcs), color=color, ls="--", lw=0.8)
    ax.axhline(TARGET_BLER, color="gray", lw=0.6)
    ax.set_xlabel("Es/N0 (dB)")
    ax.set_ylabel("codeword BLER")
    ax.set_title(f"LDPC n={curves['code_n']} BLER over AWGN ({curves['level']}); dashed: BICM limit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
