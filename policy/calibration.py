"""Reward calibration: does the configured reward have a real trade-off, and which weights would give it one?

A uniform-rank adapter's quality does not depend on the channel, so each rank is fine-tuned once per seed on the
real environment's regime (policy.real_steps / real_train_subset / real_eval_size); rank 0 sends nothing and keeps
the untrained head (the plateau). Every (SNR, cost weight, deadline) is then arithmetic: payload bytes, the real
airtime at the MCS the link picks, reward = -loss - weight x airtime - penalty past the deadline. The reward has a
trade-off when the reward-optimal uniform rank takes at least `min_distinct` values across the SNRs and, at the
highest SNR, its accuracy is at least `min_gain` above the plateau. Re-run it when the link or the regime changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from policy.problem import Problem
from testbed.stats import mean_ci

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

UNIFORM_RANKS = (0, 1, 2, 4, 8, 16)
COST_WEIGHTS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
DEADLINES_S = (5.0, 10.0, 20.0, 40.0, 80.0)


def measure_uniform(cfg: TestbedConfig, ranks: tuple[int, ...], seeds: int,
                    say: Callable[[str], None] = print) -> dict[int, dict[str, Any]]:
    """Test loss and accuracy of each uniform rank over `seeds` fine-tunes (seed k: finetune.seed k, subset k % 3)."""
    from ml.data import load_task
    from ml.models import load_classifier, projection_shapes
    from policy.finetunes import _eval, finetune_once

    p = cfg.policy
    splits = load_task(cfg.data)
    modules, _ = projection_shapes(cfg.model, cfg.finetune.target_modules, splits.num_labels)
    out: dict[int, dict[str, Any]] = {}
    for r in ranks:
        runs = []
        for seed in range(seeds):
            seeded = cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update={"seed": seed})})
            if r == 0:
                model, tok = load_classifier(cfg.model, splits.num_labels)
                loss, acc = _eval(model, tok, splits.test[:p.real_eval_size], cfg.model.max_length)
            else:
                run = finetune_once(seeded, splits, [r] * len(modules), p.real_steps, p.real_train_subset, seed % 3,
                                    p.real_eval_size)
                loss, acc = run["loss"], run["accuracy"]
            runs.append({"seed": seed, "loss": loss, "accuracy": acc})
            say(f"uniform rank {r} seed {seed}: loss {loss:.4f} accuracy {acc:.3f}")
            if r == 0:
                break  # the untrained model is the same for every seed
        out[r] = {"runs": runs, "loss": mean_ci([x["loss"] for x in runs]),
                  "accuracy": mean_ci([x["accuracy"] for x in runs])}
    return out


def optimum_per_snr(measured: dict[int, dict[str, Any]], problem: Problem,
                    snrs_db: list[float]) -> list[dict[str, Any]]:
    """Per SNR: every uniform rank's payload, airtime and reward under `problem`'s weights, and the best rank."""
    rows = []
    for snr in snrs_db:
        cells = []
        for r, m in sorted(measured.items()):
            out = problem.score([r] * problem.n, snr, m["loss"]["mean"], m["accuracy"]["mean"])
            cells.append({"rank": r, "payload_bytes": out.payload_bytes, "airtime_s": out.airtime_s,
                          "reward": out.reward, "accuracy": out.accuracy, "missed_deadline": out.missed_deadline})
        best = max(cells, key=lambda c: c["reward"])
        rows.append({"snr_db": snr, "best_rank": best["rank"], "best_accuracy": best["accuracy"], "cells": cells})
    return rows


def has_tradeoff(rows: list[dict[str, Any]], plateau_accuracy: float, min_distinct: int = 3,
                 min_gain: float = 0.05) -> dict[str, Any]:
    """Whether the optimum moves with the channel (distinct best ranks) and pays off at the highest SNR."""
    distinct = sorted({r["best_rank"] for r in rows})
    top = max(rows, key=lambda r: r["snr_db"])
    gain = top["best_accuracy"] - plateau_accuracy
    return {"distinct_best_ranks": distinct, "gain_at_top_snr": gain,
            "holds": len(distinct) >= min_distinct and gain >= min_gain}


def search(measured: dict[int, dict[str, Any]], problem: Problem, snrs_db: list[float],
           weights: tuple[float, ...] = COST_WEIGHTS, deadlines_s: tuple[float, ...] = DEADLINES_S,
           min_distinct: int = 3, min_gain: float = 0.05) -> list[dict[str, Any]]:
    """Every (cost weight, deadline) on the grid with its per-SNR optimum and verdict, those with a trade-off first
    (most distinct optima, then the largest gain)."""
    plateau = measured[min(measured)]["accuracy"]["mean"]
    found = []
    for w in weights:
        for d in deadlines_s:
            p = dataclasses.replace(problem, cost_weight=w, deadline_s=d)
            rows = optimum_per_snr(measured, p, snrs_db)
            verdict = has_tradeoff(rows, plateau, min_distinct, min_gain)
            found.append({"cost_weight": w, "deadline_s": d, "best_ranks": [r["best_rank"] for r in rows],
                          **verdict})
    return sorted(found, key=lambda f: (not f["holds"], -len(f["distinct_best_ranks"]), -f["gain_at_top_snr"]))


def spread_points(measured: dict[int, dict[str, Any]]) -> float:
    """The largest standard deviation over seeds of any rank's accuracy, in points (item: <= 1.5)."""
    return 100.0 * max(float(np.nan_to_num(m["accuracy"]["std"])) for m in measured.values())
