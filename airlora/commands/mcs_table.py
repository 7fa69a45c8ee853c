"""`airlora mcs-table`: measure error-rate curves and write the link-adaptation table of one MCS family.

conv (default): packet error rate of the K=7 MCSs through the full v1 receiver -> radio/mcs_per_curves.json.
ldpc: codeword BLER of the LDPC MCSs over AWGN -> radio/mcs_bler_curves.json, with each MCS's Es/N0 at
BLER 1e-2 and its gap to the BICM Shannon limit.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--family", choices=("conv", "ldpc"), default="conv", help="which MCS family to measure")
    parser.add_argument("--snr-db", default=None,
                        help="SNR grid a:b:step (inclusive) or x,y,z (default: -3:30:1 conv, -6:30:0.25 ldpc)")
    parser.add_argument("--packets", type=int, default=40, help="conv: packets per SNR point and MCS")
    parser.add_argument("--codewords", type=int, default=10000, help="ldpc: at most this many codewords per point")
    parser.add_argument("--seed", type=int, default=1, help="ldpc: seed of the measurement")
    parser.add_argument("--workers", type=int, default=1, help="ldpc: processes (one MCS each at a time)")
    parser.add_argument("--plot", type=Path, default=None, help="ldpc: write a BLER plot (PNG) here")
    parser.add_argument("--cfo-hz", type=finite_float, default=1000.0, help="conv: CFO applied during the measurement")
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
    curves = measure(settings, grid, args.packets, cfo_hz=args.cfo_hz, progress=progress)
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
    """BLER curves of the LDPC family over AWGN (symbol level), the gap table and an optional plot."""
    from radio import bler_table

    if args.codewords < 1 or args.workers < 1:
        raise RadioError(f"--codewords and --workers must be >= 1, got {args.codewords}, {args.workers}")
    out = args.out or BLER_CURVES_FILE
    plan = bler_table.MeasurePlan(max_codewords=args.codewords, coarse_codewords=min(100, args.codewords),
                                  batch=min(500, args.codewords))

    def progress(mcs, bler) -> None:
        at = bler_table.crossing_db(grid, bler)
        print(f"  {mcs.name:16s} BLER 1e-2 at {at:6.2f} dB", flush=True)

    curves = bler_table.measure(grid, plan, seed=args.seed, workers=args.workers,
                                progress=None if args.json else progress)
    bler_table.write(curves, out)
    mcs_module.bler_curves.cache_clear()
    gaps = bler_table.gap_table(curves)
    if args.plot:
        bler_table.plot(curves, args.plot)
    if args.json:
        emit_json({"target_bler": bler_table.TARGET_BLER, "file": str(out), "measured_s": curves["measured_s"],
                   "gaps": {n: {"esn0_db": _finite(a), "limit_db": lim, "gap_db": _finite(g)}
                            for n, (a, lim, g) in gaps.items()}})
        return 0
    print(f"wrote {out} ({curves['measured_s']} s); Es/N0 at BLER {bler_table.TARGET_BLER:g} and gap to the "
          "BICM limit:")
    for name, (at, limit, gap) in gaps.items():
        print(f"  {name:16s} {at:7.2f} dB  limit {limit:7.2f} dB  gap {gap:5.2f} dB")
    return 0


def _finite(value: float) -> float | None:
    """JSON has no infinity: a curve that never reaches the target BLER reports null."""
    return value if np.isfinite(value) else None
