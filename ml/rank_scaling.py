"""Rank-scaling benchmark: test accuracy of uniform-rank LoRA per scaling mode over seeds, and AdaLoRA beside it.

A benchmark, not a test: every cell is a real fine-tune of the configured model on the configured data (the
embedded default: MiniLM-L6 on Rotten Tomatoes, `finetune.steps` steps), evaluated on the test split. Seeds vary
the adapter's initialisation and the batch order (`finetune.seed`); the head seed and the data split stay fixed.
It reports mean, standard deviation and a 95% confidence interval per cell, and the checks issue 10 asks for:
accuracy never drops by more than `max_drop` from one rank to the next, the largest rank is at least the
second largest, and AdaLoRA is within `adalora_margin` of uniform LoRA at its target rank.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from testbed.config import TestbedConfig
from testbed.stats import mean_ci

@dataclass(frozen=True)
class ScalingMode:
    """One LoRA scaling rule to measure: finetune.alpha_mode, its alpha, and the learning rate."""

    alpha_mode: str
    alpha: float
    lr: float

    @property
    def label(self) -> str:
        return f"{self.alpha_mode}:{self.alpha:g}@{self.lr:g}"

    @staticmethod
    def parse(spec: str, default_lr: float) -> ScalingMode:
        """'rslora:5.66' or 'rslora:5.66@1e-3' (lr after @; the config's lr when absent)."""
        mode, _, rest = spec.partition(":")
        alpha, _, lr = rest.partition("@")
        return ScalingMode(mode, float(alpha) if alpha else 2.0, float(lr) if lr else default_lr)


def one_finetune(cfg: TestbedConfig, splits, ranks: int | None, seed: int, mode: ScalingMode | None,
                 adalora_target_rank: int | None = None) -> dict[str, Any]:
    """One real fine-tune (uniform LoRA rank `ranks`, or AdaLoRA) and its test accuracy and loss."""
    from adapters.ranks import adaptable_modules
    from ml import finetune as ft
    from ml.evaluate import logits
    from ml.models import head_module_names, load_classifier

    update: dict[str, Any] = {"seed": seed}
    if mode is not None:
        update.update(alpha_mode=mode.alpha_mode, alpha=mode.alpha, lr=mode.lr)
    fcfg = cfg.finetune.model_copy(update=update)
    model, tokenizer = load_classifier(cfg.model, splits.num_labels)
    modules = adaptable_modules(model, fcfg.target_modules)
    heads = head_module_names(model)
    t0 = time.perf_counter()
    if adalora_target_rank:
        result = ft.train_adalora(model, tokenizer, splits.train, modules, adalora_target_rank, fcfg, heads,
                                  cfg.model.max_length)
    else:
        result = ft.train_lora(model, tokenizer, splits.train, {m: ranks for m in modules}, fcfg, heads,
                               cfg.model.max_length)
    z = logits(result.model, tokenizer, [t for t, _ in splits.test], cfg.model.max_length)
    y = np.array([label for _, label in splits.test])
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return {"accuracy": float(np.mean(z.argmax(axis=1) == y)), "loss": float(-logp[np.arange(len(y)), y].mean()),
            "train_loss": float(np.mean(result.losses[-10:])), "seconds": round(time.perf_counter() - t0, 1),
            "rank_sum": int(sum(result.adapter.ranks.values()))}


def run_benchmark(cfg: TestbedConfig, ranks: list[int], modes: list[ScalingMode], seeds: int,
                  adalora_target_rank: int | None = None, max_drop: float = 0.005, adalora_margin: float = 0.01,
                  say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every (mode, rank, seed) cell and AdaLoRA per seed; per-cell statistics and the checks."""
    from ml.data import load_task

    splits = load_task(cfg.data)
    runs: list[dict[str, Any]] = []
    for mode in modes:
        for r in ranks:
            for seed in range(seeds):
                out = one_finetune(cfg, splits, r, seed, mode)
                runs.append({"method": "lora", "mode": mode.label, "rank": r, "seed": seed, **out})
                say(f"{mode.label} rank {r} seed {seed}: accuracy {out['accuracy']:.3f} ({out['seconds']} s)")
    if adalora_target_rank:
        for seed in range(seeds):
            out = one_finetune(cfg, splits, None, seed, None, adalora_target_rank)
            runs.append({"method": "adalora", "mode": f"adalora:{adalora_target_rank}", "rank": adalora_target_rank,
                         "seed": seed, **out})
            say(f"adalora:{adalora_target_rank} seed {seed}: accuracy {out['accuracy']:.3f} ({out['seconds']} s)")
    return summarize(runs, ranks, [m.label for m in modes], adalora_target_rank, max_drop, adalora_margin)


def summarize(runs: list[dict[str, Any]], ranks: list[int], modes: list[str], adalora_target_rank: int | None,
              max_drop: float, adalora_margin: float) -> dict[str, Any]:
    """Statistics per (mode, rank) and the pass/fail of each check."""
    table: dict[str, dict[int, dict[str, float]]] = {}
    for mode in modes:
        table[mode] = {r: mean_ci([x["accuracy"] for x in runs if x["mode"] == mode and x["rank"] == r])
                       for r in ranks}
    checks: dict[str, dict[str, Any]] = {}
    for mode, cells in table.items():
        means = [cells[r]["mean"] for r in ranks]
        drops = [a - b for a, b in zip(means, means[1:])]
        checks[mode] = {"max_drop": max(drops) if drops else 0.0,
                        "never_drops": all(d <= max_drop + 1e-12 for d in drops),
                        "largest_at_least_second": len(means) < 2 or means[-1] >= means[-2]}
    adalora = None
    if adalora_target_rank:
        stats = mean_ci([x["accuracy"] for x in runs if x["method"] == "adalora"])
        adalora = {"target_rank": adalora_target_rank, **stats, "vs": {}}
        for mode, cells in table.items():
            if adalora_target_rank in cells:
                gap = stats["mean"] - cells[adalora_target_rank]["mean"]
                adalora["vs"][mode] = {"gap": gap, "within_margin": gap >= -adalora_margin}
    return {"ranks": ranks, "modes": modes, "table": {m: {str(r): c for r, c in t.items()} for m, t in table.items()},
            "checks": checks, "adalora": adalora, "runs": runs, "max_drop": max_drop, "adalora_margin": adalora_margin}


def format_table(report: dict[str, Any]) -> list[str]:
    """The printed table: accuracy mean ± 95% CI (std) per mode and rank, then the checks."""
    ranks = report["ranks"]
    lines = [f"{'mode':<24}" + "".join(f"{'rank ' + str(r):>22}" for r in ranks)]
    for mode, cells in report["table"].items():
        lines.append(f"{mode:<24}" + "".join(
            f"{c['mean']:>9.3f} ±{c['ci95']:.3f} ({c['std']:.3f})" for c in (cells[str(r)] for r in ranks)))
    for mode, c in report["checks"].items():
        lines.append(f"{mode}: largest drop rank to rank {100 * c['max_drop']:+.1f} points "
                     f"({'ok' if c['never_drops'] else 'FAILS'} <= {100 * report['max_drop']:.1f}); "
                     f"rank {ranks[-1]} >= rank {ranks[-2] if len(ranks) > 1 else ranks[-1]}: "
                     f"{'ok' if c['largest_at_least_second'] else 'FAILS'}")
    a = report.get("adalora")
    if a:
        lines.append(f"adalora:{a['target_rank']} {a['mean']:.3f} ±{a['ci95']:.3f} ({a['std']:.3f})" + "".join(
            f"; vs {mode} rank {a['target_rank']}: {100 * v['gap']:+.1f} points "
            f"({'ok' if v['within_margin'] else 'FAILS'})" for mode, v in a["vs"].items()))
    return lines
