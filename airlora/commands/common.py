"""Arguments and helpers shared by several verbs."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from typing import Any

from testbed import config as config_module


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config and --set, as every verb that reads testbed.yaml takes them."""
    parser.add_argument("--config", default=None, help="path to testbed.yaml (default: the repository's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set channel.snr_db=10 (repeatable)")


def load_config(args: argparse.Namespace, extra: list[str] | None = None) -> config_module.TestbedConfig:
    """The validated config named by --config, with --set overrides (and extra ones) applied."""
    return config_module.load(getattr(args, "config", None), list(getattr(args, "overrides", [])) + (extra or []))


def finite_float(text: str) -> float:
    """An argparse type: a number, refusing NaN and infinity."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text[:40]!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (seconds, rates)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text[:40]!r}")
    return value


def comma_floats(text: str) -> list[float]:
    """An argparse type: comma-separated finite numbers, e.g. --snr-db -5,0,5 (written --snr-db=-5,0,5)."""
    try:
        return [finite_float(x) for x in text.split(",") if x.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got {text[:40]!r}") from None


def write_report(report: dict[str, Any], out: str | None, as_json: bool) -> bool:
    """Write the report to --out (when given) and print it as one JSON object under --json; True when printed."""
    if out:
        from pathlib import Path

        Path(out).write_text(json.dumps(report, indent=1, default=float))
    if as_json:
        emit_json(report)
    return as_json


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    json.dump(obj, sys.stdout, indent=None, default=float)
    sys.stdout.write("\n")


def start_model_verb(args: argparse.Namespace) -> None:
    """What a verb that loads models does first: no tokenizer fork warnings; library chatter hidden unless --verbose."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not getattr(args, "verbose", False):
        quiet_third_party()


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """--verbose, as every verb that loads models takes it."""
    parser.add_argument("--verbose", action="store_true",
                        help="let library chatter through (bitsandbytes, transformers warnings)")


BNB_KERNEL_LOGGER = "bitsandbytes.backends.cpu.ops"  # logs a warning at import when `kernels` is not installed
BNB_KERNEL_MESSAGE = "Failed to load CPU gemm_4bit_forward"


def _not_bnb_kernel_warning(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(BNB_KERNEL_MESSAGE)


def quiet_third_party() -> None:
    """Hide library chatter a user cannot act on: bitsandbytes' warning that its optional CPU 4-bit kernel is
    missing (logged at import), and transformers' FutureWarnings (deprecations hit inside transformers and peft).
    Call it before the libraries are imported."""
    logging.getLogger(BNB_KERNEL_LOGGER).addFilter(_not_bnb_kernel_warning)  # that one record, nothing else
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
