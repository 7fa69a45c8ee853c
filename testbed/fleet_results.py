"""A fleet run's plots: every edge's decoding progress over time (symbols held / symbols needed), per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testbed import plots


def progress_series(events: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """edge -> [(t_s, symbols held / K)] from the fleet_progress events of the payload sessions (soundings left out)."""
    applied = {e["session"] for e in events if e.get("event") == "fleet_session" and e.get("apply")}
    series: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        if e.get("event") == "fleet_progress" and e.get("session") in applied and e.get("needed"):
            series.setdefault(e["edge"], []).append((e["t_s"], min(e["received"] / e["needed"], 2.0)))
    return series


def fleet_progress(series: dict[str, list[tuple[float, float]]], path: Path) -> Path:
    """Each edge's symbols held / needed over the run's time; 1.0 is where a decoder may finish."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, points in sorted(series.items()):
        t, f = zip(*points)
        ax.step(t, f, where="post", lw=1.2, label=name)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("symbols held / K")
    return plots.save(fig, ax, path)


def fleet_plots(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    """fleet_progress.png and accuracy_vs_payload.png of a fleet run folder; the paths made."""
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line.strip()]
    made = []
    series = progress_series(events)
    if series:
        made.append(str(fleet_progress(series, folder / "fleet_progress.png")))
    done = [r for r in rows if r.get("host_accuracy") is not None]
    if done:
        made.append(str(plots.accuracy_vs_payload([r["payload_bytes"] for r in done],
                                                  [r["host_accuracy"] for r in done],
                                                  [r.get("edge_accuracy") for r in done],
                                                  folder / "accuracy_vs_payload.png")))
    return made
