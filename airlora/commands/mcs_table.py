"""`airlora mcs-table`: measure error-rate curves and write the link-adaptation table of one MCS family.

conv (default): packet error rate of the K=7 MCSs through the full v1 receiver -> radio/mcs_per_curves.json.
ldpc: codeword BLER of the LDPC MCSs over AWGN -> radio/mcs_bler_curves.json, with each MCS's Es/N0 at
BLER 1e-2 and its gap to the BICM Shannon limit. `--level symbols` (default: seconds, the CI smoke) decodes
codewords sent as bare symbols; `--level receiver` (the shipped table, ~10 CPU minutes) sends them in v2
bursts through the channel (CFO, unknown start) and the full burst receiver (radio/bler_table.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from radio import mcs as mcs_module
from radio.errors import RadioError
from radio.mcs import BLER_CURVES_FILE, MCS_TABLE, PER_CURVES_FILE
from airlora.commands.common import add_config_arguments, emit_json, finite_float, load_config

DEFAULT_GRID = {"conv": "-3:30:1", "ldpc": "-6:30:0.25"}
RECEIVER_SYMBOL_BUDGET = 8_000_000  # ldpc receiver level: channel symbols per fine point (32 M samples, ~7 CPU s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--family", choices=("conv", "ldpc"), default="conv", help="which MCS family to measure")
    parser.add_argument("--snr-db", default=None,
                        help="SNR grid a:b:step (inclusive) or x,y,z (default: -3:30:1 conv, -6:30:0.25 ldpc)")
    parser.add_argument("--packets", type=int, default=40, help="conv: packets per SNR point and MCS")
    parser.add_argument("--codewords", type=int, default=10000, help="ldpc: at most this many codewords per point")
    parser.add_argument("--level", choices=("symbols", "receiver"), default="symbols",
                        help="ldpc: codewords as bare symbols over AWGN, or in bursts through the full receiver")
    parser.add_argument("--target-errors", type=int, default=100, help="ldpc: a point stops after this many errors")
    parser.add_argument("--symbol-budget", type=int, default=None,
                        help=f"ldpc: at most this many channel symbols per point (default: none at symbol level, "
                             f"{RECEIVER_SYMBOL_BUDGET:g} at receiver level)")
    parser.add_argument("--rolloff", type=finite_float, default=None,
                        help="ldpc receiver level: RRC roll-off (default: the config's radio.rolloff)")
    parser.add_argument("--seed", type=int, default=1, help="ldpc: seed of the measurement")
    parser.add_argument("--workers", type=int, default=1, help="ldpc: processes (one MCS each at a time)")
    parser.add_argument("--plot", type=Path, default=None, help="ldpc: write a BLER plot (PNG) here")
    parser.add_argument("--cfo-hz", type=finite_float, default=None,
                        help="CFO applied during the measurement (default: 1000 Hz conv, 1 %% of the sample rate "
                             "ldpc receiver level)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the curves (default: radio/mcs_per_curves.json or mcs_bler_curves.json)")
    parser.add_argument("--json", action="store_true", help="print the thresholds as JSON")


def parse_grid(text: str) -> np.ndarray:
    """'a:b:step' (inclusive) or 'x,y,z' -> array of floats."""
    if ":" in text:
        a, b, step = (float(v) for v in text.split(":"))
        return np.round(np.arange(a, b + step / 2, step), 6)
    return np.array([float(v) for v in text.split(",")])


def run(args: argparse.Namespace) -> int:
    grid = parse_grid(args.snr_db or DEFAULT_GRID[args.family])
    return run_ldpc(args, grid) if args.family == "ldpc" else run_conv(args, grid)


def run_conv(args: argparse.Namespace, grid: np.ndarray) -> int:
    """PER curves of the K=7 family through the full v1 receiver."""
    from radio.link import LinkSettings
    from radio.mcs_calibration import measure, write

    cfg = load_config(args)
    settings = LinkSettings.from_config(cfg.radio)
    out = args.out or PER_CURVES_FILE
    progress = None if args.json else \
        (lambda name, snr, per: print(f"{name:10s} {snr:6.1f} dB  PER {per:.3f}", flush=True))
    curves = measure(settings, grid, args.packets, cfo_hz=1000.0 if args.cfo_hz is None else args.cfo_hz,
                     progress=progress)
    write(curves, out)
    mcs_module.per_curves.cache_clear()
    thresholds = {m.name: mcs_module.required_snr_db(m, settings.target_per, curves) for m in MCS_TABLE}
    if args.json:
        emit_json({"target_per": settings.target_per, "required_snr_db": thresholds, "file": str(out)})
    else:
        print(f"wrote {out}; SNR needed for PER <= {settings.target_per}:")
        for name, snr in thresholds.items():
            print(f"  {name:10s} {snr:6.2f} dB")
    return 0


def run_ldpc(args: argparse.Namespace, grid: np.ndarray) -> int:
    """BLER curves of the LDPC family over AWGN (symbol or receiver level), the gap table and an optional plot."""
    from radio import bler_table

    if args.codewords < 1 or args.workers < 1 or args.target_errors < 1:
        raise RadioError(f"--codewords, --workers and --target-errors must be >= 1, got {args.codewords}, "
                         f"{args.workers}, {args.target_errors}")
    out = args.out or BLER_CURVES_FILE
    budget = args.symbol_budget if args.symbol_budget is not None else \
        (RECEIVER_SYMBOL_BUDGET if args.level == "receiver" else None)
    plan = bler_table.MeasurePlan(max_codewords=args.codewords, coarse_codewords=min(100, args.codewords),
                                  target_errors=args.target_errors, batch=min(500, args.codewords),
                                  symbol_budget=budget)
    link, info = bler_table.symbol_link, {}
    if args.level == "receiver":
        cfg = load_config(args)
        fs = cfg.radio.sample_rate_hz
        cfo_hz = 0.01 * fs if args.cfo_hz is None else args.cfo_hz
        rolloff = cfg.radio.rolloff if args.rolloff is None else args.rolloff
        link = bler_table.ReceiverLink(fs, cfg.radio.samples_per_symbol, rolloff, cfo_hz)
        info = link.info()
        import radio.burst_rx  # noqa: F401  (now: every worker forks with the same receiver code)
    command = (f"airlora mcs-table --family ldpc --level {args.level} --snr-db {args.snr_db or DEFAULT_GRID['ldpc']} "
               f"--codewords {args.codewords} --target-errors {args.target_errors} --seed {args.seed}"
               + (f" --symbol-budget {budget}" if budget is not None else "")
               + (f" --rolloff {info['rolloff']:g} --cfo-hz {info['cfo_hz']:g}" if info else ""))

    def progress(mcs, curve) -> None:
        at = bler_table.crossing_db(grid, curve.bler)
        print(f"  {mcs.name:16s} BLER 1e-2 at {at:6.2f} dB ({sum(curve.codewords)} codewords)", flush=True)

    curves = bler_table.measure(grid, plan, seed=args.seed, link=link, level=args.level, workers=args.workers,
                                progress=None if args.json else progress, link_info=info, command=command)
    bler_table.write(curves, out)
    mcs_module.bler_curves.cache_clear()
    rows = bler_table.gap_rows(curves)
    if args.plot:
        bler_table.plot(curves, args.plot)
    if args.json:
        emit_json({"target_bler": bler_table.TARGET_BLER, "file": str(out), "measured_s": curves["measured_s"],
                   "level": args.level,
                   "gaps": {r.name: {"esn0_db": _finite(r.esn0_db), "limit_db": r.limit_db,
                                     "gap_db": _finite(r.gap_db), "scheme_limit_db": r.scheme_limit_db,
                                     "scheme_gap_db": _finite(r.scheme_gap_db),
                                     "received_esn0_db": _finite(r.received_esn0_db)} for r in rows}})
        return 0
    print(f"wrote {out} ({curves['level']} level, {curves['measured_s']} s); Es/N0 at BLER "
          f"{bler_table.TARGET_BLER:g} and gap to the BICM limit (scheme: the limit of the scheme as sent, "
          "for repeated codewords; received: codewords of bursts whose SIG decoded):")
    print(f"  {'mcs':16s} {'Es/N0':>7s} {'limit':>7s} {'gap':>5s}  {'scheme':>7s} {'gap':>5s}  "
          f"{'received':>8s} {'gap':>5s}")
    for r in rows:
        scheme = f"{r.scheme_limit_db:7.2f} {r.scheme_gap_db:5.2f}" if r.scheme_limit_db != r.limit_db else " " * 13
        print(f"  {r.name:16s} {r.esn0_db:7.2f} {r.limit_db:7.2f} {r.gap_db:5.2f}  {scheme}  "
              f"{r.received_esn0_db:8.2f} {r.received_gap_db:5.2f}")
    return 0


def _finite(value: float) -> float | None:
    """JSON has no infinity: a curve that never reaches the target BLER reports null."""
    return value if np.isfinite(value) else None
