"""`airlora run`: the main job. Until the closed loop lands it runs the radio link demo on the config."""

from __future__ import annotations

import argparse

from testbed.commands import link
from testbed.commands.common import add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    link_args = link.build_parser_defaults(args)
    return link.run(link_args)
