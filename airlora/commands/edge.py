"""`airlora edge`: run the edge daemon (receive, verify, install, evaluate, report) until stopped."""

from __future__ import annotations

import argparse
import logging
import signal

from airlora.commands.common import add_config_arguments, load_config, positive_float, quiet_third_party

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--node-id", default="edge", help="name this edge reports to hosts")
    parser.add_argument("--max-s", type=positive_float, default=None, help="stop after this many seconds (tests)")
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help=", ".join(LOG_LEVELS))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s edge %(levelname)s %(message)s")
    quiet_third_party()
    cfg = load_config(args)
    from edge_node.daemon import EdgeDaemon

    daemon = EdgeDaemon(cfg, node_id=args.node_id)

    def stop(signum, frame):  # noqa: ARG001
        daemon.running = False

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("airlora.edge").info("serving on %s, radio %s", cfg.control.bind_endpoint, cfg.radio.backend)
    daemon.serve(args.max_s)
    return 0
