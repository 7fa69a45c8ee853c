"""Figures of policy training and of the sweep: learning curves, accuracy vs airtime, reward per SNR, rank maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policy.train import smoothed
from testbed.stats import mean_ci
from testbed.plots import pyplot as _pyplot
from testbed.plots import save


def _per_snr(ax, cells: list[dict[str, Any]], key: str) -> None:
    """Mean of cells[key] against the channel's set SNR with its 95% CI over seeds, one errorbar line per policy."""
    seeds = 0
    for name in dict.fromkeys(c["policy"] for c in cells):
        snrs = sorted({c["snr_db"] for c in cells if c["policy"] == name})
        stats = [mean_ci([c[key] for c in cells if c["policy"] == name and c["snr_db"] == s]) for s in snrs]
        seeds = max(seeds, *(s["n"] for s in stats))
        ax.errorbar(snrs, [s["mean"] for s in stats], yerr=[np.nan_to_num(s["ci95"]) for s in stats], marker="o",
                    capsize=3, label=name)
    ax.set_xlabel(f"channel SNR set [dB]; bars: 95% CI over {seeds} seeds")


def _mean_curve(runs: list[list[dict[str, Any]]], key: str) -> tuple[list[int], np.ndarray]:
    """Environment steps and the seed-averaged, smoothed `key` of learning curves that share one schedule."""
    pts = [[(r["env_steps"], r[key]) for r in curve if key in r] for curve in runs]
    n = min(len(p) for p in pts)
    return [s for s, _ in pts[0][:n]], np.mean([smoothed([v for _, v in p[:n]]) for p in pts], axis=0)


def learning_curves(curves: dict[str, list[list[dict[str, Any]]]], path: Path) -> Path:
    """Greedy (deterministic) and training reward per update against environment steps, one line per learner,
    averaged over the seeds it was trained with."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, runs in curves.items():
        if not runs:
            continue
        seeds = f", {len(runs)} seeds" if len(runs) > 1 else ""
        line, = ax.plot(*_mean_curve(runs, "train_reward"), lw=1, alpha=0.5,
                        label=f"{name} (training, exploring{seeds})")
        if all(any("eval_reward" in r for r in c) for c in runs):
            ax.plot(*_mean_curve(runs, "eval_reward"), color=line.get_color(), lw=2, label=f"{name} (greedy{seeds})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("reward per step (smoothed)")
    return save(fig, ax, path)


def accuracy_vs_airtime(cells: list[dict[str, Any]], path: Path) -> Path:
    """Each sweep cell's accuracy against its airtime, one colour per policy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(c["policy"] for c in cells):
        pts = [(c["airtime_s"], c["accuracy"]) for c in cells if c["policy"] == name]
        ax.plot(*zip(*pts), "o", ms=4, alpha=0.7, label=name)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("airtime of the adapter [s]")
    ax.set_ylabel("test accuracy")
    return save(fig, ax, path)


def reward_per_snr(cells: list[dict[str, Any]], path: Path) -> Path:
    """Mean reward (with its spread over seeds) per SNR, one line per policy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    _per_snr(ax, cells, "reward")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("reward (-loss - 0.1 airtime - penalty)")
    return save(fig, ax, path)


def rank_maps(cells: list[dict[str, Any]], modules: list[str], r_max: int, path: Path) -> Path:
    """Mean rank of every projection (rows, grouped by layer) against SNR (columns), one panel per policy."""
    plt = _pyplot()
    names = list(dict.fromkeys(c["policy"] for c in cells))
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names) + 1.5, 7), squeeze=False)
    from policy.finetunes import kind_of, layer_of

    short = [f"L{layer_of(m)} {kind_of(m).replace('attention.', '').replace('self.', '')}" for m in modules]
    image = None
    for ax, name in zip(axes[0], names):
        snrs = sorted({c["snr_db"] for c in cells if c["policy"] == name})
        grid = np.array([np.mean([c["ranks"] for c in cells if c["policy"] == name and c["snr_db"] == s], axis=0)
                         for s in snrs]).T
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=r_max)
        ax.set_xticks(range(len(snrs)), [f"{s:g}" for s in snrs], fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("SNR [dB]", fontsize=8)
        ax.set_yticks(range(len(modules)), short if ax is axes[0][0] else [""] * len(modules), fontsize=5)
    fig.colorbar(image, ax=axes[0].tolist(), label="rank", shrink=0.6)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def rank_sum_per_snr(cells: list[dict[str, Any]], path: Path) -> Path:
    """Total rank (sum over projections) each policy picks against SNR: how the choice follows the channel."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    _per_snr(ax, cells, "rank_sum")
    ax.set_yscale("log")
    ax.set_ylabel("sum of ranks over projections")
    return save(fig, ax, path)
