"""`airlora mcs-table`: measure PER curves through the full receiver and write the link-adaptation table."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from radio import mcs as mcs_module
from radio.link import LinkSettings
from radio.mcs import MCS_TABLE, PER_CURVES_FILE
from radio.mcs_calibration import measure, write
from airlora.commands.common import add_config_arguments, emit_json, finite_float, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--snr-db", default="-3:30:1", help="SNR grid a:b:step (inclusive)")
    parser.add_argument("--packets", type=int, default=40, help="packets per SNR point and MCS")
    parser.add_argument("--cfo-hz", type=finite_float, default=1000.0, help="CFO applied during the measurement")
    parser.add_argument("--out", type=Path, default=PER_CURVES_FILE, help="where to write the curves")
    parser.add_argument("--json", action="store_true", help="print the thresholds as JSON")


def parse_grid(text: str) -> np.ndarray:
    """'a:b:step' (inclusive) or 'x,y,z' -> array of floats."""
    if ":" in text:
        a, b, step = (float(v) for v in text.split(":"))
        return np.round(np.arange(a, b + step / 2, step), 6)
    return np.array([float(v) for v in text.split(",")])


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    settings = LinkSettings.from_config(cfg.radio)
    progress = None if args.json else (lambda name, snr, per: print(f"{name:10s} {snr:6.1f} dB  PER {per:.3f}", flush=True))
    curves = measure(settings, parse_grid(args.snr_db), args.packets, cfo_hz=args.cfo_hz, progress=progress)
    write(curves, args.out)
    mcs_module.per_curves.cache_clear()
    thresholds = {m.name: mcs_module.required_snr_db(m, settings.target_per, curves) for m in MCS_TABLE}
    if args.json:
        emit_json({"target_per": settings.target_per, "required_snr_db": thresholds, "file": str(args.out)})
    else:
        print(f"wrote {args.out}; SNR needed for PER <= {settings.target_per}:")
        for name, snr in thresholds.items():
            print(f"  {name:10s} {snr:6.2f} dB")
    return 0
