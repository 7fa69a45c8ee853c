"""`airlora fed`: federated fine-tuning over the air: local edges train on their own shards, send their adapters up
the radio, the host aggregates and broadcasts the global adapter (docs/federated.md)."""

from __future__ import annotations

import argparse
import logging

from airlora.commands.common import (add_config_arguments, add_verbose_argument, load_config,
                                     quiet_third_party)
from airlora.commands.run import _interrupt_on_termination, run_multi_edge

ROUND_COLUMNS = [("round", "rnd", "{}"), ("edges_included", "included", "{}"), ("edges", "edges", "{}"),
                 ("global_rank_sum", "rank sum", "{}"), ("global_payload_bytes", "global B", "{}"),
                 ("uplink_airtime_s", "uplink s", "{:.2f}"), ("downlink_airtime_s", "downlink s", "{:.2f}"),
                 ("mean_local_accuracy", "local acc", "{:.3f}"), ("global_accuracy", "global acc", "{:.3f}"),
                 ("epsilon", "epsilon", "{:.2f}"), ("wall_s", "wall s", "{:.0f}")]
EDGE_COLUMNS = [("round", "rnd", "{}"), ("edge", "edge", "{}"), ("snr_db_uplink", "uplink SNR", "{:.2f}"),
                ("rank_sum", "rank sum", "{}"), ("payload_bytes", "bytes", "{}"), ("uplink_mcs", "MCS", "{}"),
                ("uplink_airtime_s", "airtime s", "{:.2f}"), ("samples", "samples", "{}"),
                ("local_accuracy", "local acc", "{:.3f}"), ("included", "included", "{}"), ("reason", "left out", "{}")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    parser.add_argument("--rounds", type=int, default=None, help="federated rounds (fed.rounds)")
    parser.add_argument("--edges", type=int, default=None, metavar="N", help="local edges (fed.edges)")
    add_verbose_argument(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s host %(levelname)s %(message)s")
    if not args.verbose:
        quiet_third_party()
    extra = [f"fed.rounds={args.rounds}"] * (args.rounds is not None) + [f"fed.edges={args.edges}"] * (
        args.edges is not None)
    cfg = load_config(args, extra)
    with _interrupt_on_termination():
        return _run(args, cfg)


def _run(args: argparse.Namespace, cfg) -> int:
    from host.fed_experiment import run_fed_rounds
    from testbed.fed_results import fed_plots

    rows = run_multi_edge(cfg, args.json, lambda folder, say: run_fed_rounds(cfg, folder, say), fed_plots,
                          ROUND_COLUMNS, EDGE_COLUMNS)
    return 0 if rows and len(rows) == cfg.fed.rounds else 1
