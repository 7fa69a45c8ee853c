"""Arguments and helpers shared by several verbs."""

from __future__ import annotations

import argparse
import json
import sys
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


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    json.dump(obj, sys.stdout, indent=None, default=float)
    sys.stdout.write("\n")


def quiet_third_party() -> None:
    """Hide library chatter a user cannot act on (bitsandbytes' optional CPU kernels, transformers deprecations)."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
