"""Measure codeword BLER curves of the LDPC MCS family over AWGN (`airlora mcs-table --family ldpc`).

What carries the codewords is pluggable (`CodewordLink`). Two links ship:

- `symbol_link` (level "symbols", cheap, the CI smoke): payload -> codeword.encode -> map_bits -> AWGN at
  Es/N0 = SNR -> demap_llr -> codeword.decode (filler forced, CRC checked).
- `ReceiverLink` (level "receiver", what radio/mcs_bler_curves.json holds): random-payload codewords in v2
  bursts (radio/burst_tx.py) after random leading noise, through radio/channel.py's Channel (AWGN, CFO)
  into a BurstReceiver (radio/burst_rx.py): acquisition, SIG, pilot tracking, demapping and decoding all
  count. A burst that is not detected, or whose SIG fails, loses all its codewords (`BURST_LOST`).

The grid is measured in two passes per MCS: a coarse one (about 1 dB apart, few codewords) finds the
waterfall, a fine one (every grid point there) counts codewords until `target_errors` errors or the point's
budget (`max_codewords`, `symbol_budget`), and keeps going up until a point sees no error at all. Points not
measured are filled by linear interpolation of the measured ones (1 below the waterfall, 0 above);
`codewords_measured` says which are which (0: filled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radio import codeword
from radio.ber import bicm_limit_esn0_db
from radio.mcs import BLER_CURVES_FILE, Mcs, family_table, ldpc_code
from radio.modulation import constellation, demap_llr, map_bits

if TYPE_CHECKING:
    from radio.burst_tx import BurstPlan

CodewordLink = Callable[[Mcs, float, int, np.random.Generator], np.ndarray]
"""(mcs, snr_db, count, rng) -> (count,) flags of `count` random codewords sent at SNR: 0 received, nonzero
lost (`LOST`; `BURST_LOST` when the codeword went down with its whole burst: not detected or SIG failed)."""

LOST, BURST_LOST = 1, 2
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
class ReceiverLink:
    """Codewords through the v2 transmitter, the channel and the burst receiver (level "receiver").

    A call sends `count` codewords in as few bursts as `burst_s` and `max_burst_codewords` allow (sizes as
    equal as possible), each burst with its own random payload (one run from offset 0) after 1 ..
    `max_lead_samples` samples of noise (unknown start), through a fresh AWGN `Channel` at Es/N0 = snr_db
    with `cfo_hz`, into a fresh `BurstReceiver` fed `chunk_samples` at a time. Fresh means no CFO prior:
    every burst is acquired on the wide path over +-120 kHz, as a link's first burst (a receiver primed with
    the right prior detected about as many bursts, 30 per point at -6..-2 dB). After the burst
    `tail_samples` of noise, then `flush`. No SCO, free-running clocks, no HARQ: first transmissions. A
    codeword is received when an RxCodeword at its offset carries its bytes.
    """

    sample_rate_hz: float = 1.0e6
    samples_per_symbol: int = 4
    rolloff: float = 0.15
    """the v2 default (radio.rolloff)"""
    cfo_hz: float = 10.0e3
    """1 % of the sample rate"""
    burst_s: float = 0.2
    """longest burst body on air (data symbols only)"""
    max_burst_codewords: int = 200
    max_lead_samples: int = 8192
    tail_samples: int = 16384
    chunk_samples: int = 65536

    def burst_sizes(self, mcs: Mcs, count: int) -> list[int]:
        """Codewords per burst for `count` codewords: as few bursts as the limits allow, near-equal sizes."""
        from radio.burst import codeword_symbols

        symbol_rate = self.sample_rate_hz / self.samples_per_symbol
        cap = max(1, min(self.max_burst_codewords, int(self.burst_s * symbol_rate) // codeword_symbols(mcs)))
        bursts = -(-count // cap)
        return [count // bursts + (i < count % bursts) for i in range(bursts)]

    def burst(self, mcs: Mcs, snr_db: float, number: int, codewords: int,
              rng: np.random.Generator) -> tuple[bytes, int, list]:
        """One burst of `codewords` random codewords after random leading noise, through a fresh channel into
        a fresh receiver: (payload, lead samples, receiver events); its SIG is `plan(mcs, number, codewords).sig`."""
        from radio.burst import codeword_bytes
        from radio.burst_rx import BurstReceiver
        from radio.burst_tx import burst_chunks
        from radio.channel import Channel
        from radio.link import LinkSettings
        from radio.transmitter import TX_POWER

        settings = LinkSettings(self.sample_rate_hz, self.samples_per_symbol, self.rolloff)
        data = rng.integers(0, 256, codewords * codeword_bytes(mcs), dtype=np.uint8).tobytes()
        plan = self.plan(mcs, number, codewords)
        lead = np.zeros(int(rng.integers(1, self.max_lead_samples + 1)), np.complex64)
        channel = Channel("awgn", snr_db, self.sample_rate_hz, self.samples_per_symbol, TX_POWER,
                          cfo_hz=self.cfo_hz, seed=int(rng.integers(1 << 62)))
        rx = BurstReceiver(self.sample_rate_hz, self.samples_per_symbol, self.rolloff)
        events = []
        for chunk in (lead, *burst_chunks(plan, data, settings, self.chunk_samples)):
            events += rx.feed(channel.apply(chunk))
        events += rx.feed(channel.apply(np.zeros(self.tail_samples, np.complex64))) + rx.flush()
        return data, lead.size, events

    @staticmethod
    def plan(mcs: Mcs, number: int, codewords: int) -> BurstPlan:
        """The BurstPlan of burst `number`: session 1, one run of `codewords` from offset 0."""
        from radio.burst import codeword_bytes
        from radio.burst_tx import BurstPlan, CodewordRun

        return BurstPlan(1, number, mcs, (CodewordRun(0, codewords),), codewords * codeword_bytes(mcs))

    def __call__(self, mcs: Mcs, snr_db: float, count: int, rng: np.random.Generator) -> np.ndarray:
        from radio.burst import codeword_bytes
        from radio.burst_events import RxBurst, RxCodeword

        size = codeword_bytes(mcs)
        flags = np.full(count, LOST, np.int8)
        done = 0
        for number, n in enumerate(self.burst_sizes(mcs, count)):
            data, _, events = self.burst(mcs, snr_db, number, n, rng)
            sig = self.plan(mcs, number, n).sig
            got = flags[done: done + n]
            if not any(isinstance(e, RxBurst) and e.sig == sig for e in events):
                got[:] = BURST_LOST
            for e in events:
                if isinstance(e, RxCodeword) and e.burst == number and e.data is not None and \
                        e.data == data[e.offset: e.offset + e.length]:
                    got[e.offset // size] = 0
            done += n
        return flags

    def info(self) -> dict:
        """The link's settings, for the curves file."""
        from dataclasses import asdict
        return asdict(self)


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
    symbol_budget: int | None = None
    """at most this many channel symbols per fine point (codewords x codeword symbols; None: no limit):
    keeps the low-rate MCSs' points as cheap in time as the others'"""

    def fine_codewords(self, mcs: Mcs) -> int:
        """Most codewords a fine point of `mcs` sends."""
        if self.symbol_budget is None:
            return self.max_codewords
        symbols = mcs.code_n // mcs.bits_per_symbol * mcs.repeat
        return max(self.coarse_codewords, min(self.max_codewords, self.symbol_budget // symbols))


@dataclass(frozen=True)
class McsCurve:
    """One MCS on the grid: BLER, codewords measured (0: interpolated) and the fraction of codewords lost
    with their whole burst (0 at symbol level)."""

    bler: list[float]
    codewords: list[int]
    burst_lost: list[float]


def _rng(seed: int, mcs: Mcs, snr_db: float, phase: int) -> np.random.Generator:
    """A generator per (seed, MCS, point, pass): results do not depend on order or on worker count."""
    return np.random.default_rng([seed, mcs.index, int(round(100 * snr_db)) + 100_000, phase])


def count_errors(link: CodewordLink, mcs: Mcs, snr_db: float, plan: MeasurePlan, rng: np.random.Generator,
                 max_codewords: int | None = None) -> tuple[int, int, int]:
    """(errors, codewords, lost with their burst) at one point: batches until target_errors or max_codewords."""
    limit = plan.max_codewords if max_codewords is None else max_codewords
    errors = sent = burst_lost = 0
    while sent < limit and errors < plan.target_errors:
        count = min(plan.batch, limit - sent)
        flags = np.asarray(link(mcs, snr_db, count, rng))
        errors += int(np.count_nonzero(flags))
        burst_lost += int(np.count_nonzero(flags == BURST_LOST))
        sent += count
    return errors, sent, burst_lost


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
                link: CodewordLink = symbol_link) -> McsCurve:
    """BLER of one MCS on the grid, the codewords measured per point (0 where interpolated), burst losses."""
    grid_db = np.asarray(grid_db, float)
    measured: dict[int, tuple[int, int, int]] = {}
    zeros = 0
    for i in coarse_points(grid_db, plan.coarse_step_db):
        if zeros >= 2:  # two clean coarse points: the rest of the grid is above the waterfall
            break
        measured[i] = count_errors(link, mcs, grid_db[i], plan, _rng(seed, mcs, grid_db[i], 0),
                                   plan.coarse_codewords)
        zeros = zeros + 1 if measured[i][0] == 0 else 0
    coarse = sorted(measured)
    high = [i for i in coarse if measured[i][0] >= plan.fill_bler * measured[i][1]]
    start = high[-1] if high else 0
    for i in range(start, len(grid_db)):
        measured[i] = count_errors(link, mcs, grid_db[i], plan, _rng(seed, mcs, grid_db[i], 1),
                                   plan.fine_codewords(mcs))
        if measured[i][0] == 0:
            break
    index = np.array(sorted(measured))
    everywhere = np.arange(len(grid_db))
    bler = np.interp(everywhere, index, [measured[i][0] / measured[i][1] for i in index])
    lost = np.interp(everywhere, index, [measured[i][2] / measured[i][1] for i in index])
    codewords = [measured[i][1] if i in measured else 0 for i in range(len(grid_db))]
    return McsCurve([float(v) for v in bler], codewords, [float(v) for v in lost])


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


def scheme_limit_db(mcs: Mcs) -> float:
    """The limit of the scheme as sent: each copy of a rate-r codeword sent `repeat` times with summed LLRs
    (chase combining) needs the BICM limit at rate r, less 10 log10(repeat) dB per copy. Equal to
    `shannon_limit_db` without repetition; for ldpc-bpsk-1/4 it is 0.98 dB above it (repetition's own cost)."""
    return bicm_limit_esn0_db(mcs.modulation, mcs.bits_per_symbol * mcs.code_rate * mcs.repeat) \
        - 10.0 * np.log10(mcs.repeat)


def gap_table(curves: dict, target: float = TARGET_BLER) -> dict[str, tuple[float, float, float]]:
    """name -> (Es/N0 at BLER target, Shannon limit, gap) in dB for every LDPC MCS in the curves."""
    out = {}
    for mcs in family_table("ldpc"):
        if mcs.name in curves["bler"]:
            at = crossing_db(curves["snr_db"], curves["bler"][mcs.name], target)
            limit = shannon_limit_db(mcs)
            out[mcs.name] = (at, limit, at - limit)
    return out


@dataclass(frozen=True)
class GapRow:
    """One MCS's line of the gap table (dB; inf where the curve never reaches the target)."""

    name: str
    esn0_db: float
    """Es/N0 at the target BLER, every loss counted"""
    limit_db: float
    """BICM limit of the MCS's constellation at its information bits per symbol"""
    scheme_limit_db: float
    """the limit of the scheme as sent (differs for repeated codewords)"""
    received_esn0_db: float
    """Es/N0 at the target BLER among codewords whose burst was received (SIG decoded); = esn0_db at
    symbol level"""

    @property
    def gap_db(self) -> float:
        return self.esn0_db - self.limit_db

    @property
    def scheme_gap_db(self) -> float:
        return self.esn0_db - self.scheme_limit_db

    @property
    def received_gap_db(self) -> float:
        return self.received_esn0_db - self.limit_db


def gap_rows(curves: dict, target: float = TARGET_BLER) -> list[GapRow]:
    """The gap table of every LDPC MCS in the curves, most robust first."""
    rows = []
    lost = curves.get("burst_lost", {})
    for mcs in family_table("ldpc"):
        if mcs.name not in curves["bler"]:
            continue
        bler = np.asarray(curves["bler"][mcs.name], float)
        burst = np.asarray(lost.get(mcs.name, np.zeros_like(bler)), float)
        received = np.where(burst < 1.0, (bler - burst) / np.maximum(1.0 - burst, 1e-12), 1.0)
        rows.append(GapRow(mcs.name, crossing_db(curves["snr_db"], bler, target), shannon_limit_db(mcs),
                           scheme_limit_db(mcs), crossing_db(curves["snr_db"], np.clip(received, 0.0, 1.0), target)))
    return rows


def _measure_one(args: tuple[Mcs, np.ndarray, MeasurePlan, int, CodewordLink]) -> McsCurve:
    return measure_mcs(*args)


def measure(grid_db: np.ndarray, plan: MeasurePlan = MeasurePlan(), seed: int = 1, link: CodewordLink = symbol_link,
            level: str = "symbols", workers: int = 1, progress: Callable[[Mcs, McsCurve], None] | None = None,
            mcs_list: tuple[Mcs, ...] | None = None, link_info: dict | None = None,
            command: str = "airlora mcs-table --family ldpc") -> dict:
    """BLER curves of every LDPC MCS (or `mcs_list`) on the grid, as written to radio/mcs_bler_curves.json.

    link_info: the link's settings (ReceiverLink.info()), written as top-level keys; "burst_lost" (per MCS
    and point, the fraction of codewords lost with their burst) is written at receiver level."""
    grid = np.round(np.asarray(grid_db, float), 6)
    table = mcs_list or family_table("ldpc")
    t0 = time.perf_counter()
    jobs = [(m, grid, plan, seed, link) for m in table]
    results: list[McsCurve] = []
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as pool:
            for job, result in zip(jobs, pool.map(_measure_one, jobs)):
                results.append(result)
                if progress:
                    progress(job[0], result)
    else:
        for job in jobs:
            results.append(_measure_one(job))
            if progress:
                progress(job[0], results[-1])
    curves = {
        "level": level,
        "channel": "awgn",
        "code_n": table[0].code_n,
        **(link_info or {}),
        "snr_db": [float(s) for s in grid],
        "codewords": plan.max_codewords,
        "coarse_codewords": plan.coarse_codewords,
        "symbol_budget": plan.symbol_budget,
        "target_errors": plan.target_errors,
        "seed": seed,
        "measured_s": round(time.perf_counter() - t0, 1),
        "command": command,
        "bler": {m.name: r.bler for m, r in zip(table, results)},
        "codewords_measured": {m.name: r.codewords for m, r in zip(table, results)},
        "limits_db": {m.name: round(shannon_limit_db(m), 3) for m in table},
    }
    if level != "symbols":
        curves["burst_lost"] = {m.name: [round(v, 6) for v in r.burst_lost] for m, r in zip(table, results)}
    return curves


def write(curves: dict, path: Path = BLER_CURVES_FILE) -> None:
    """The curves as JSON (one MCS per line for readable diffs)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in curves.items() if not isinstance(v, dict)]
    for key in ("bler", "codewords_measured", "burst_lost", "limits_db"):
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
