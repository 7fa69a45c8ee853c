"""Benchmark of the v2 link (issues 12 and 16): goodput against Shannon per SNR, and memory/time per payload size.

`python -m radio.bench_link` (or `airlora bench link`) prints three tables:
- goodput / Shannon of the occupied bandwidth ((1 + rolloff) Rs log2(1 + SNR_set)) over AWGN, 200 kB, CFO
  10 kHz (1 % of 1 MS/s), unknown start (the sim's random idle start), at -2 .. 30 dB;
- the same over Rician K = 6 dB at 10 - 20 dB (`--rician-seeds N`: N seeds per SNR from `--rician-first-seed`
  (1), their mean and 95 % CI; `--interleave-symbols`: radio.interleave_symbols of both tables);
- with `--grid` (issue 17): AWGN 200 kB at 10 and 20 dB over CFO 0 / 46 / 120 kHz x SCO 0 / 20 / 50 ppm,
  free-running clocks (the receiver `airlora link` runs: timing loop started at 0 ppm), delivery, goodput and
  its loss against (0, 0), measured SNR; then locked clocks (one crystal per Pluto: CFO = ppm x LO, the
  receiver's timing loop started at cfo / lo_hz) at 915 MHz and 2.4 GHz for 0 / 20 / 50 ppm;
- `size_point` (`--one-size`, in a subprocess of its own): one payload size over sim or the in-process zmq
  loopback with both ends in that process; the size table with host and edge in separate processes is
  host/link_bench.py (`airlora bench link` prints both).
Not a test: it takes minutes (the receiver runs at a few MS/s; -2 dB needs ~50 s of air at 1 MS/s).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

from radio.config import ChannelConfig, RadioConfig
from radio.interleave import DEFAULT_INTERLEAVE_SYMBOLS
from radio.link import LinkSettings
from radio.rss import peak_rss_mb

AWGN_SNRS_DB = (-2.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
RICIAN_SNRS_DB = (10.0, 15.0, 20.0)
GRID_SNRS_DB = (10.0, 20.0)
GRID_CFOS_HZ = (0.0, 46e3, 120e3)
GRID_SCOS_PPM = (0.0, 20.0, 50.0)
GRID_LOS_HZ = (915e6, 2.4e9)
SIZE_SNR_DB = 25.0


def settings_for(sample_rate_hz: float = 1e6, rolloff: float = 0.15, burst_airtime_s: float = 1.0,
                 window_bursts: int = 2, mcs: str = "auto",
                 interleave_symbols: int = DEFAULT_INTERLEAVE_SYMBOLS) -> LinkSettings:
    """The v2 link settings the benchmark runs (4 samples per symbol)."""
    return LinkSettings(sample_rate_hz, 4, rolloff, mcs=mcs, frame="v2", burst_airtime_s=burst_airtime_s,
                        window_bursts=window_bursts, interleave_symbols=interleave_symbols)


def _backends(settings: LinkSettings, channel: ChannelConfig, backend: str):
    """(tx, rx, closer) for 'sim' or 'zmq' (the in-process loopback pair)."""
    from radio.backends.factory import make_backend, make_channel
    from radio.backends.zmq_iq import loopback_pair
    from radio.transmitter import TX_POWER

    if backend == "sim":
        radio = RadioConfig(sample_rate_hz=settings.sample_rate_hz, samples_per_symbol=settings.samples_per_symbol,
                            rolloff=settings.rolloff, frame="v2")
        b = make_backend(radio, channel, TX_POWER)
        return b, b, b.close
    ch = make_channel(channel, settings.sample_rate_hz, settings.samples_per_symbol, TX_POWER)
    tx, rx = loopback_pair(settings.sample_rate_hz, ch, send_timeout_s=30.0)

    def close() -> None:
        tx.close()
        rx.close()

    return tx, rx, close


def run_point(settings: LinkSettings, payload_bytes: int, snr_db: float, model: str = "awgn", cfo_hz: float = 10e3,
              seed: int = 1, backend: str = "sim", sco_ppm: float = 0.0, locked_lo_hz: float | None = None) -> dict:
    """One transfer of random bytes; its figures as a dict. locked_lo_hz: the receiver assumes locked clocks
    at that LO (its timing loop starts at cfo / lo); None: free-running, as `airlora link`."""
    from radio.link_v2 import transfer_v2

    channel = ChannelConfig(model=model, snr_db=snr_db, cfo_hz=cfo_hz, seed=seed, rician_k_db=6.0, sco_ppm=sco_ppm)
    data = np.random.default_rng(seed).bytes(payload_bytes)
    receiver = None
    if locked_lo_hz is not None:
        from radio.burst_rx import BurstReceiver
        from radio.harq import LlrStore

        receiver = BurstReceiver(settings.sample_rate_hz, settings.samples_per_symbol, settings.rolloff,
                                 lo_hz=locked_lo_hz, locked_clocks=True, harq=LlrStore(),
                                 interleave_symbols=settings.interleave_symbols)
    tx, rx, close = _backends(settings, channel, backend)
    try:
        report = transfer_v2(data, tx, settings, session=seed & 0xFFFF, rx_backend=rx, receiver=receiver)
    finally:
        close()
    shannon = report.shannon_bps(snr_db)
    mcs = sorted(set(report.mcs_per_burst[1:]), key=report.mcs_per_burst.index) or report.mcs_per_burst
    return {"snr_db": snr_db, "model": model, "seed": seed, "backend": backend, "bytes": payload_bytes,
            "delivered": report.delivered, "goodput_bps": report.goodput_bps, "shannon_bps": shannon,
            "efficiency": report.goodput_bps / shannon, "airtime_s": report.airtime_s, "wall_s": report.wall_s,
            "rx_wall_s": report.rx_wall_s, "bursts": len(report.bursts), "timeouts": report.timeouts,
            "codewords_sent": report.codewords_sent, "codewords_resent": report.codewords_resent,
            "snr_db_measured": report.snr_db_measured, "mcs": mcs}


def grid_points(snrs_db: tuple[float, ...] = GRID_SNRS_DB, cfos_hz: tuple[float, ...] = GRID_CFOS_HZ,
                scos_ppm: tuple[float, ...] = GRID_SCOS_PPM,
                los_hz: tuple[float, ...] = GRID_LOS_HZ) -> list[tuple[str, float, float, float, float | None]]:
    """(clocks, SNR dB, CFO Hz, SCO ppm, locked LO Hz) of the offsets grid: every CFO x SCO free-running, then
    per LO the locked pairs CFO = ppm 1e-6 LO (the (0, 0) reference once per SNR and clock kind)."""
    points: list[tuple[str, float, float, float, float | None]] = []
    for snr in snrs_db:
        points += [("free", snr, cfo, sco, None) for cfo in cfos_hz for sco in scos_ppm]
        points.append(("locked", snr, 0.0, 0.0, los_hz[0]))
        points += [("locked", snr, sco * 1e-6 * lo, sco, lo) for lo in los_hz for sco in scos_ppm if sco]
    return points


def bench_grid(settings: LinkSettings, payload_bytes: int = 200_000, seed: int = 1, say=print,
               points: list[tuple[str, float, float, float, float | None]] | None = None) -> list[dict]:
    """The offsets grid (issue 17): one AWGN transfer per point; loss against the (0, 0) point of its SNR."""
    rows: list[dict] = []
    say(f"offsets grid, AWGN, {payload_bytes} B, seed {seed} (loss: goodput against CFO 0 / SCO 0 of the same "
        "SNR and clocks)")
    say(f"{'clocks':>6} {'LO GHz':>6} {'SNR dB':>6} {'CFO kHz':>8} {'SCO ppm':>7} {'ok':>3} {'goodput kb/s':>13} "
        f"{'/Shannon':>9} {'loss %':>7} {'SNR meas':>8} {'resent':>6}  MCS")
    reference: dict[tuple[str, float], float] = {}
    for clocks, snr, cfo, sco, lo in points if points is not None else grid_points():
        r = run_point(settings, payload_bytes, snr, "awgn", cfo_hz=cfo, seed=seed, sco_ppm=sco, locked_lo_hz=lo)
        key = (clocks, snr)
        if cfo == 0.0 and sco == 0.0:
            reference[key] = r["goodput_bps"]
        ref = reference.get(key)
        r.update(clocks=clocks, cfo_hz=cfo, sco_ppm=sco, lo_hz=lo,
                 loss=(1.0 - r["goodput_bps"] / ref) if ref else float("nan"))
        rows.append(r)
        say(f"{clocks:>6} {(lo or 0) / 1e9:6.3f} {snr:6.1f} {cfo / 1e3:8.2f} {sco:7.1f} "
            f"{'yes' if r['delivered'] else 'NO':>3} {r['goodput_bps'] / 1e3:13.1f} {r['efficiency']:9.3f} "
            f"{100 * r['loss']:7.1f} {r['snr_db_measured']:8.2f} {r['codewords_resent']:6d}  {','.join(r['mcs'])}")
    return rows


def size_point(settings: LinkSettings, size_mb: float, backend: str, snr_db: float = SIZE_SNR_DB) -> dict:
    """One size in this process (call it in a fresh subprocess): run_point plus peak and starting RSS."""
    from radio.link_v2 import transfer_v2  # noqa: F401  (imports count in the baseline, not the transfer)

    before = _maxrss_mb()
    t0 = time.perf_counter()
    out = run_point(settings, int(size_mb * 1e6), snr_db, cfo_hz=0.0, backend=backend)
    out.update(rss_before_mb=before, peak_rss_mb=_maxrss_mb(), process_wall_s=time.perf_counter() - t0,
               size_mb=size_mb)
    return out


def _maxrss_mb() -> float:
    return peak_rss_mb()  # VmHWM: ru_maxrss would count the parent's memory at the fork


def size_point_subprocess(size_mb: float, backend: str, sample_rate_hz: float, timeout_s: float = 3600.0) -> dict:
    """size_point in a child process (its own peak RSS)."""
    cmd = [sys.executable, "-m", "radio.bench_link", "--one-size", str(size_mb), "--backend", backend,
           "--sample-rate-hz", str(sample_rate_hz)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        return {"size_mb": size_mb, "backend": backend, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_link(snrs_db: tuple[float, ...] = AWGN_SNRS_DB, rician_db: tuple[float, ...] = RICIAN_SNRS_DB,
               payload_bytes: int = 200_000, sample_rate_hz: float = 1e6, say=print, rician_seeds: int = 1,
               interleave_symbols: int = DEFAULT_INTERLEAVE_SYMBOLS, rician_first_seed: int = 1) -> dict:
    """The AWGN and Rician tables; `say` gets each row as it is measured. Rician: rician_seeds seeds per SNR from
    rician_first_seed, then their mean goodput / Shannon with a 95 % Student-t interval."""
    if rician_seeds < 1 or rician_first_seed < 0:
        raise ValueError(f"rician_seeds must be >= 1 and rician_first_seed >= 0, got {rician_seeds}, "
                         f"{rician_first_seed}")
    rician_seed_range = range(rician_first_seed, rician_first_seed + rician_seeds)
    settings = settings_for(sample_rate_hz, interleave_symbols=interleave_symbols)
    out: dict = {"sample_rate_hz": sample_rate_hz, "rolloff": settings.rolloff, "payload_bytes": payload_bytes,
                 "interleave_symbols": interleave_symbols, "awgn": [], "rician": [], "rician_mean": []}
    for model, snrs, rows in (("awgn", snrs_db, out["awgn"]), ("rician", rician_db, out["rician"])):
        if snrs:
            say(f"{model}, {payload_bytes} B, CFO 10 kHz, interleave {interleave_symbols} symbols"
                + (f", K 6 dB, seeds {rician_seed_range[0]}..{rician_seed_range[-1]}" if model == "rician" else ""))
            say(f"{'SNR dB':>7} {'seed':>4} {'ok':>3} {'goodput kb/s':>13} {'/Shannon':>9} {'air s':>7} {'wall s':>7} "
                f"{'bursts':>6} {'resent':>6} {'SNR meas':>8}  MCS")
        for snr in snrs:
            seeds = rician_seed_range if model == "rician" else range(1, 2)
            for seed in seeds:
                r = run_point(settings, payload_bytes, snr, model, seed=seed)
                rows.append(r)
                say(f"{snr:7.1f} {seed:4d} {'yes' if r['delivered'] else 'NO':>3} {r['goodput_bps'] / 1e3:13.1f} "
                    f"{r['efficiency']:9.3f} {r['airtime_s']:7.2f} {r['wall_s']:7.2f} {r['bursts']:6d} "
                    f"{r['codewords_resent']:6d} {r['snr_db_measured']:8.2f}  {','.join(r['mcs'])}")
            if len(seeds) > 1:
                mean, half = mean_interval([r["efficiency"] for r in rows[-len(seeds):]])
                out["rician_mean"].append({"snr_db": snr, "seeds": len(seeds), "first_seed": seeds[0],
                                           "efficiency": mean, "ci95": half})
                say(f"{snr:7.1f} mean of seeds {seeds[0]}..{seeds[-1]}: goodput / Shannon {mean:.3f} +- {half:.3f} "
                    "(95 %)")
    return out


def mean_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its 95 % Student-t confidence interval) of two or more values."""
    from scipy.stats import t

    x = np.asarray(values, float)
    return float(x.mean()), float(t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m radio.bench_link", description=__doc__.splitlines()[0])
    parser.add_argument("--snrs", type=_floats, default=AWGN_SNRS_DB, help="AWGN SNRs in dB (empty: skip)")
    parser.add_argument("--rician", type=_floats, default=RICIAN_SNRS_DB, help="Rician K=6 SNRs (empty: skip)")
    parser.add_argument("--rician-seeds", type=int, default=1, help="N seeds per Rician SNR (mean, 95 %% CI)")
    parser.add_argument("--rician-first-seed", type=int, default=1,
                        help="first Rician seed (e.g. 17 with --rician-seeds 16: the held-out seeds 17..32)")
    parser.add_argument("--interleave-symbols", type=int, default=DEFAULT_INTERLEAVE_SYMBOLS,
                        help="radio.interleave_symbols of the SNR tables (0: off)")
    parser.add_argument("--bytes", type=int, default=200_000, help="payload of the SNR tables")
    parser.add_argument("--sample-rate-hz", type=float, default=1e6)
    parser.add_argument("--grid", action="store_true",
                        help="the CFO x SCO grid of issue 17 at 10 and 20 dB (free-running and locked clocks) only")
    parser.add_argument("--seed", type=int, default=1, help="payload and channel seed of the grid")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("--one-size", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="sim", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rician_seeds < 1 or args.rician_first_seed < 0:
        parser.error("--rician-seeds must be >= 1 and --rician-first-seed >= 0")
    if args.one_size is not None:
        print(json.dumps(_clean(size_point(settings_for(args.sample_rate_hz), args.one_size, args.backend))))
        return 0
    if args.grid:
        rows = bench_grid(settings_for(args.sample_rate_hz), args.bytes, args.seed,
                          say=(lambda _: None) if args.json else print)
        if args.json:
            print(json.dumps(_clean({"grid": rows})))
        return 0
    report = bench_link(args.snrs, args.rician, args.bytes, args.sample_rate_hz,
                        say=(lambda _: None) if args.json else print, rician_seeds=args.rician_seeds,
                        interleave_symbols=args.interleave_symbols, rician_first_seed=args.rician_first_seed)
    if args.json:
        print(json.dumps(_clean(report)))
    return 0


def _clean(obj):
    """NaN and inf as null (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


if __name__ == "__main__":
    raise SystemExit(main())
