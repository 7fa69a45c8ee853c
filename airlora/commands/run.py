"""`airlora run`: the main job. Starts (or reaches) the edge and runs the configured rounds end to end."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airlora.commands.common import (add_config_arguments, add_verbose_argument, emit_json, load_config,
                                     quiet_third_party)
from testbed.progress import echo

TABLE_COLUMNS = [("round", "rnd", "{}"), ("snr_db_set", "SNR set", "{:.1f}"), ("snr_db_measured", "SNR meas", "{:.2f}"),
                 ("mcs", "MCS", "{}"), ("rank_sum", "rank sum", "{}"), ("payload_bytes", "payload B", "{}"),
                 ("airtime_s", "airtime s", "{:.2f}"), ("packets_retransmitted", "retx", "{}"),
                 ("host_accuracy", "host acc", "{:.3f}"), ("edge_accuracy", "edge acc", "{:.3f}"),
                 ("wall_s", "wall s", "{:.0f}")]
FLEET_COLUMNS = [("round", "rnd", "{}"), ("edges_installed", "installed", "{}"), ("edges", "edges", "{}"),
                 ("snr_db_measured", "SNR rule", "{:.2f}"), ("snr_db_min", "SNR min", "{:.2f}"),
                 ("snr_db_mean", "SNR mean", "{:.2f}"), ("mcs", "MCS", "{}"), ("rank_sum", "rank sum", "{}"),
                 ("payload_bytes", "payload B", "{}"), ("source_symbols", "K", "{}"),
                 ("symbols_sent", "symbols", "{}"), ("airtime_s", "airtime s", "{:.2f}"),
                 ("host_accuracy", "host acc", "{:.3f}"), ("edge_accuracy", "edge acc", "{:.3f}"),
                 ("wall_s", "wall s", "{:.0f}")]
EDGE_COLUMNS = [("round", "rnd", "{}"), ("edge", "edge", "{}"), ("snr_db_set", "SNR set", "{:.1f}"),
                ("snr_db_measured", "SNR meas", "{:.2f}"), ("symbols_received", "symbols", "{}"),
                ("symbols_needed", "K", "{}"), ("done_s", "done s", "{:.1f}"), ("installed", "installed", "{}"),
                ("edge_accuracy", "edge acc", "{:.3f}")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    parser.add_argument("--pluto-uri", default=None, help="transmit through a real Pluto (e.g. ip:192.168.2.1)")
    parser.add_argument("--edges", type=int, default=None, metavar="N",
                        help="start N local edges, each behind its own emulated channel (fleet.local_snr_db), and "
                             "broadcast to all of them with a fountain code; 1 is the single-edge run (default: "
                             "the edges of fleet.edges, else one)")
    add_verbose_argument(parser)


@contextmanager
def _interrupt_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run like Ctrl-C: the finally blocks run, so a local edge process is stopped too
    (SIGKILL cannot be caught: the edge then gets SIGTERM from the kernel, see host.edge_process.die_with_parent)."""
    def interrupt(signum: int, frame) -> None:  # noqa: ARG001
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s host %(levelname)s %(message)s")
    if not args.verbose:
        quiet_third_party()
    cfg = load_config(args)
    with _interrupt_on_termination():
        return _run(args, cfg)


def _run(args: argparse.Namespace, cfg) -> int:
    """The rounds, their table, plots and summary."""
    from host.experiment import run_rounds
    from host.fleet import fleet_edges
    from testbed.results import RunFolder

    edges = fleet_edges(cfg, args.edges)
    if edges:
        return _run_fleet(args, cfg, edges)
    folder = RunFolder(cfg.run.out_dir)
    config_path = folder.path / "config.yaml"
    folder.write_config(cfg.model_dump(mode="json"))
    out = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        echo(text, file=out)  # above the fine-tuning and delivery bars, when a terminal shows them

    say(f"run folder: {folder.path}")
    try:
        summary = run_rounds(cfg, folder, say, config_path, pluto_uri=args.pluto_uri)
    finally:
        folder.close()
    rows = summary["rounds"]
    folder.write_rows("rounds.csv", rows)
    summary["run_dir"] = str(folder.path)
    summary["plots"] = _plots(folder, rows)
    folder.write_json("summary.json", summary)
    if args.json:
        emit_json(summary)
    else:
        print(table(rows))
        print(f"results: {folder.path} (config.yaml, events.jsonl, rounds.csv, plots)")
    return 0 if rows and all(r.get("delivered") and r.get("installed") for r in rows) else 1


def _run_fleet(args: argparse.Namespace, cfg, edges) -> int:
    """A fleet run: rounds broadcast to every edge; the round table, the per-edge table, plots, summary."""
    from host.fleet_experiment import run_fleet_rounds
    from testbed.fleet_results import fleet_plots

    rows = run_multi_edge(cfg, args.json, lambda folder, say: run_fleet_rounds(
        cfg, folder, say, edges, local=args.edges is not None, pluto_uri=args.pluto_uri), fleet_plots, FLEET_COLUMNS)
    return 0 if rows and all(r.get("installed") for r in rows) else 1


def run_multi_edge(cfg, as_json: bool, rounds: Callable[[Any, Callable[[str], None]], dict], plots,
                   round_columns: list[tuple[str, str, str]],
                   edge_columns: list[tuple[str, str, str]] | None = None) -> list[dict]:
    """A multi-edge run (fleet, fed) in a new run folder: rounds(folder, say) -> summary, then its results
    (write_rounds_and_edges). Progress goes to stderr with --json. Returns the round rows."""
    from testbed.results import RunFolder

    folder = RunFolder(cfg.run.out_dir)
    folder.write_config(cfg.model_dump(mode="json"))
    out = sys.stderr if as_json else sys.stdout

    def say(text: str) -> None:
        echo(text, file=out)

    say(f"run folder: {folder.path}")
    try:
        summary = rounds(folder, say)
    finally:
        folder.close()
    return write_rounds_and_edges(folder, summary, plots, round_columns, edge_columns or EDGE_COLUMNS, as_json)


def write_rounds_and_edges(folder, summary: dict, plots, round_columns, edge_columns, as_json: bool) -> list[dict]:
    """A multi-edge run's results (fleet, fed): rounds.csv, edges.csv, plots, summary.json; its two tables (or
    the summary as JSON) on stdout. Returns the round rows."""
    rows, edge_rows = summary["rounds"], summary["edges"]
    folder.write_rows("rounds.csv", rows)
    folder.write_rows("edges.csv", edge_rows)
    summary["run_dir"] = str(folder.path)
    summary["plots"] = plots(folder.path, rows)
    folder.write_json("summary.json", summary)
    if as_json:
        emit_json(summary)
    else:
        print(table(rows, round_columns))
        print(table(edge_rows, edge_columns))
        print(f"results: {folder.path} (config.yaml, edges/, events.jsonl, rounds.csv, edges.csv, plots)")
    return rows


def table(rows: list[dict], columns: list[tuple[str, str, str]] | None = None) -> str:
    """The per-round table printed at the end of a run (columns: (key, title, format) triples)."""
    columns = columns or TABLE_COLUMNS
    head = [title for _, title, _ in columns]
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            ok = value is not None and not (isinstance(value, float) and math.isnan(value))
            cells.append(fmt.format(value) if ok else "-")
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def _plots(folder, rows: list[dict]) -> list[str]:
    """SNR over time, accuracy vs payload bytes (the constellation plot comes from the edge's packets)."""
    import json

    from testbed import plots

    made = []
    events = [json.loads(line) for line in (folder.path / "events.jsonl").read_text().splitlines()]
    times, measured, constellation = [], [], None
    for e in events:
        if e["event"] == "snr_report":
            times += [e["t_s"]] * len(e.get("packets", []))
            measured += [p["snr_db"] for p in e.get("packets", [])]
            if e.get("constellation"):
                constellation = (e["constellation"], e.get("constellation_mcs"), e["t_s"])
        elif e["event"] == "burst_report" and e.get("snr_db") is not None:  # frame v2: one mean SNR per burst
            times.append(e["t_s"])
            measured.append(e["snr_db"])
    set_points = [(e["t_s"], e["snr_db_set"]) for e in events if e["event"] == "session" and e.get("snr_db_set") is not None]
    if measured:
        st, sv = zip(*set_points) if set_points else ([], [])
        made.append(str(plots.snr_over_time(times, measured, list(st), list(sv), folder.path / "snr_over_time.png")))
    if constellation:
        import numpy as np

        points = np.array(constellation[0], float)
        made.append(str(plots.constellation(points[:, 0] + 1j * points[:, 1],
                                            f"one packet at {constellation[1]} (t = {constellation[2]:.0f} s), equalized",
                                            folder.path / "constellation.png")))
    done = [r for r in rows if r.get("host_accuracy") is not None]
    if done:
        made.append(str(plots.accuracy_vs_payload([r["payload_bytes"] for r in done], [r["host_accuracy"] for r in done],
                                                  [r.get("edge_accuracy") for r in done],
                                                  folder.path / "accuracy_vs_payload.png")))
    return made
