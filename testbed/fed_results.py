"""A federated run's plots: global accuracy per round, and cumulative uplink and downlink airtime per round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed import plots


def accuracy_per_round(rows: list[dict[str, Any]], path: Path) -> Path:
    """The global adapter's test accuracy and the edges' mean local accuracy, per round."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rounds = [r["round"] for r in rows]
    ax.plot(rounds, [r.get("global_accuracy") for r in rows], "o-", label="global (test split, as installed)")
    local = [(r["round"], r["mean_local_accuracy"]) for r in rows if r.get("mean_local_accuracy") is not None]
    if local:
        ax.plot(*zip(*local), "s--", label="edges' local (mean)")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_xticks(rounds)
    return plots.save(fig, ax, path)


def airtime_per_round(rows: list[dict[str, Any]], path: Path) -> Path:
    """Cumulative uplink and downlink airtime after each round."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rounds = [r["round"] for r in rows]
    ax.plot(rounds, [r["cumulative_uplink_airtime_s"] for r in rows], "o-", label="uplink (all edges)")
    ax.plot(rounds, [r["cumulative_downlink_airtime_s"] for r in rows], "s-", label="downlink (broadcast)")
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative airtime [s]")
    ax.set_xticks(rounds)
    return plots.save(fig, ax, path)


def fed_plots(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    """fed_accuracy.png and fed_airtime.png of a federated run folder; the paths made."""
    if not rows:
        return []
    return [str(accuracy_per_round(rows, folder / "fed_accuracy.png")),
            str(airtime_per_round(rows, folder / "fed_airtime.png"))]
