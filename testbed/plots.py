"""Plots of a run: measured vs set SNR over time, one packet's constellation, accuracy vs payload bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, ax, path: Path, legend: bool = True) -> Path:
    """Grid, legend, tight layout, write the PNG, close the figure."""
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def snr_over_time(times_s: list[float], measured_db: list[float], set_times_s: list[float], set_db: list[float],
                  path: Path) -> Path:
    """Per-packet measured SNR against the configured SNR, over the run's time."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(times_s, measured_db, ".", ms=3, label="measured by the edge (per packet)")
    ax.step(set_times_s, set_db, where="post", color="k", lw=1.2, label="set (channel model)")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("SNR [dB]")
    return save(fig, ax, path)


def constellation(symbols: np.ndarray, title: str, path: Path) -> Path:
    """Equalized payload symbols of one packet."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(symbols.real, symbols.imag, ".", ms=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("I")
    ax.set_ylabel("Q")
    ax.set_title(title, fontsize=9)
    return save(fig, ax, path, legend=False)


def accuracy_vs_payload(payload_bytes: list[int], host_acc: list[float], edge_acc: list[float | None],
                        path: Path) -> Path:
    """Host and edge accuracy of each round against the adapter's payload size."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(payload_bytes, host_acc, "o", label="host (after fine-tuning)")
    edge = [(b, a) for b, a in zip(payload_bytes, edge_acc) if a is not None]
    if edge:
        ax.plot(*zip(*edge), "x", ms=8, label="edge (after apply)")
    ax.set_xscale("log")
    ax.set_xlabel("payload [bytes]")
    ax.set_ylabel("test accuracy")
    return save(fig, ax, path)
