"""Real fine-tunes with varied rank vectors: the measurements the surrogate environment is fitted on.

`collect` runs short real LoRA (and a few AdaLoRA) fine-tunes of the configured model, each on a subset of the
training split, and appends one record per run to a JSON file: ranks, data features, test loss and accuracy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from testbed.errors import AirLoraError
from testbed.progress import progress

if TYPE_CHECKING:
    from ml.data import Splits
    from testbed.config import TestbedConfig

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_FILE = DATA_DIR / "minilm_rt_finetunes.json"


def kind_of(module: str) -> str:
    """The projection kind of a module name: its last part, with `attention.output.dense` told apart."""
    parts = module.split(".")
    if parts[-1] == "dense" and len(parts) >= 3:
        return f"{parts[-3]}.{parts[-2]}.dense" if parts[-3] == "attention" else f"{parts[-2]}.dense"
    return parts[-1]


def layer_of(module: str) -> int:
    """The block index in a module name (0 when there is none)."""
    for part in module.split("."):
        if part.isdigit():
            return int(part)
    return 0


def design_rank_vectors(modules: list[str], r_max: int, count: int, seed: int = 0) -> list[list[int]]:
    """`count` rank vectors that cover the space: uniform ranks, per-kind and per-layer patterns, random ones."""
    rng = np.random.default_rng(seed)
    n = len(modules)
    kinds = sorted({kind_of(m) for m in modules})
    layers = sorted({layer_of(m) for m in modules})
    out: list[list[int]] = []
    for r in (1, 4, r_max, 2, 8):
        out.append([min(r, r_max)] * n)
    patterns = [
        lambda m: 8 if kind_of(m) in ("query", "value") else 0,
        lambda m: 8 if "attention" in m else 0,
        lambda m: 8 if "attention" not in m else 0,
        lambda m: r_max if layer_of(m) >= layers[len(layers) // 2] else 0,
        lambda m: 2 if kind_of(m) in ("query", "value") else 0,
        lambda m: 1 if layer_of(m) == layers[-1] else 0,
    ]
    out += [[min(p(m), r_max) for m in modules] for p in patterns]
    while len(out) < count:
        style = len(out) % 3
        if style == 0:  # independent ranks, some projections left out
            v = rng.integers(1, r_max + 1, n) * (rng.random(n) > rng.uniform(0.0, 0.6))
        elif style == 1:  # one rank per kind
            per_kind = {k: int(rng.choice([0, 1, 2, 4, 8, r_max])) for k in kinds}
            v = np.array([per_kind[kind_of(m)] for m in modules])
        else:  # one rank per layer
            per_layer = {layer: int(rng.choice([0, 1, 2, 4, 8, r_max])) for layer in layers}
            v = np.array([per_layer[layer_of(m)] for m in modules])
        if v.sum() == 0:
            v[rng.integers(n)] = 1
        out.append([int(x) for x in np.minimum(v, r_max)])
    return out[:count]


def subset_of(index: int, seed: int = 0, subsets: int = 3) -> int:
    """The training subset of the index-th planned fine-tune: drawn at random, so that it is not tied to the
    design's style (the designs cycle through three styles; `index % 3` would confound style and data)."""
    return int(np.random.default_rng([seed, index]).integers(subsets))


def _eval(model, tokenizer, examples, max_length: int) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on examples."""
    from ml.evaluate import logits

    z = logits(model, tokenizer, [t for t, _ in examples], max_length)
    y = np.array([label for _, label in examples])
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean()), float(np.mean(z.argmax(axis=1) == y))


def finetune_once(cfg: TestbedConfig, splits: Splits, ranks: list[int] | None, steps: int, train_subset: int,
                  subset_index: int, eval_size: int, adalora_target_rank: int | None = None) -> dict[str, Any]:
    """One real fine-tune (LoRA at `ranks`, or AdaLoRA) on a train subset; its loss and accuracy on the test split."""
    from ml import finetune as ft
    from ml.features import batch_features, vocabulary
    from ml.models import head_module_names, load_classifier
    from adapters.ranks import adaptable_modules

    model, tokenizer = load_classifier(cfg.model, splits.num_labels)
    modules = adaptable_modules(model, cfg.finetune.target_modules)
    start = (subset_index * train_subset) % max(1, len(splits.train) - train_subset + 1)
    train = splits.train[start:start + train_subset]
    test = splits.test[:eval_size]
    heads = head_module_names(model)
    t0 = time.perf_counter()
    if adalora_target_rank:
        result = ft.train_adalora(model, tokenizer, train, modules, adalora_target_rank, cfg.finetune, heads,
                                  cfg.model.max_length, steps)
        ranks = [int(result.adapter.ranks.get(m, 0)) for m in modules]
    else:
        result = ft.train_lora(model, tokenizer, train, dict(zip(modules, ranks)), cfg.finetune, heads,
                               cfg.model.max_length, steps)
    loss, acc = _eval(result.model, tokenizer, test, cfg.model.max_length)
    texts = [t for t, _ in train]
    feats = batch_features(texts, vocabulary(texts))
    feats["oov_rate"] = batch_features([t for t, _ in test], vocabulary(texts))["oov_rate"]
    return {"ranks": ranks, "method": f"adalora:{adalora_target_rank}" if adalora_target_rank else "lora",
            "entropy": feats["lexical_entropy"], "oov_rate": feats["oov_rate"], "loss": loss, "accuracy": acc,
            "train_loss": float(np.mean(result.losses[-10:])), "steps": steps, "train_subset": train_subset,
            "subset_index": subset_index, "seconds": round(time.perf_counter() - t0, 1)}


def collect(cfg: TestbedConfig, out: Path, count: int, steps: int = 60, train_subset: int = 600, eval_size: int = 500,
            adalora_ranks: tuple[int, ...] = (2, 4, 8), seed: int = 0, worker: int = 0, workers: int = 1,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run `count` LoRA fine-tunes (plus one AdaLoRA run per target rank) and write them to `out` after each run.

    A file that already holds runs is resumed: designs already measured are skipped. With workers > 1, this
    process runs every workers-th planned fine-tune (start one process per worker, each with its own `out`,
    then `merge` the files).
    """
    from ml.data import load_task
    from ml.models import load_classifier
    from adapters.ranks import adaptable_modules, module_shapes

    splits = load_task(cfg.data)
    base, tokenizer = load_classifier(cfg.model, splits.num_labels)
    modules = adaptable_modules(base, cfg.finetune.target_modules)
    shapes = module_shapes(base, modules)
    r_max = cfg.policy.r_max
    if out.exists():
        data = json.loads(out.read_text())
        regime = {"model": cfg.model.name, "task": cfg.data.task, "steps": steps, "train_subset": train_subset,
                  "eval_size": eval_size, "r_max": r_max}
        differs = {k: (data.get(k), v) for k, v in regime.items() if data.get(k) != v}
        if differs:
            raise AirLoraError(f"{out}: holds fine-tunes of another regime ("
                               + ", ".join(f"{k} {a} there, {b} now" for k, (a, b) in differs.items())
                               + "); set policy.surrogate_data to a new file to collect this one")
    else:
        base_loss, base_acc = _eval(base, tokenizer, splits.test[:eval_size], cfg.model.max_length)
        data = {"model": cfg.model.name, "task": cfg.data.task, "modules": modules,
                "shapes": {m: list(s) for m, s in shapes.items()}, "r_max": r_max, "steps": steps,
                "train_subset": train_subset, "eval_size": eval_size, "base_loss": base_loss,
                "base_accuracy": base_acc, "runs": []}
    designs = design_rank_vectors(modules, r_max, count, seed)
    plan: list[tuple[list[int] | None, int | None]] = [(v, None) for v in designs[:6]]
    plan += [(None, r) for r in adalora_ranks] + [(v, None) for v in designs[6:]]
    done = {(json.dumps(r["ranks"]) if r["method"] == "lora" else r["method"]) for r in data["runs"]}
    todo = [i for i, (ranks, target) in enumerate(plan)
            if (f"adalora:{target}" if target else json.dumps(ranks)) not in done and i % workers == worker]
    bar = progress(len(todo), "fine-tunes", unit="run")
    for i in todo:
        ranks, target = plan[i]
        run = finetune_once(cfg, splits, ranks, steps, train_subset, subset_of(i, seed), eval_size, target)
        data["runs"].append(run)
        tmp = out.with_name(out.name + ".tmp")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        tmp.replace(out)
        bar.update()
        say(f"[{i + 1}/{len(plan)}] {run['method']} rank sum {sum(run['ranks'])}: loss {run['loss']:.4f} "
            f"accuracy {run['accuracy']:.3f} ({run['seconds']} s)")
    bar.close()
    return data


def _collect_worker(cfg: TestbedConfig, part: Path, count: int, steps: int, train_subset: int, eval_size: int,
                    seed: int, worker: int, workers: int, threads: int) -> int:
    """One worker process of `collect_parallel`: its share of the plan, `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    data = collect(cfg, part, count, steps, train_subset, eval_size, seed=seed, worker=worker, workers=workers,
                   say=lambda _s: None)
    return len(data["runs"])


def collect_parallel(cfg: TestbedConfig, out: Path, count: int, steps: int, train_subset: int, eval_size: int,
                     workers: int, seed: int = 0, say: Callable[[str], None] = print) -> dict[str, Any]:
    """`collect` split over `workers` local processes (one core each when there are as many cores), each writing
    `<out>.part<k>` (resumable), then merged into `out` with the runs `out` already held."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if workers <= 1:
        return collect(cfg, out, count, steps, train_subset, eval_size, seed=seed, say=say)
    threads = max(1, (os.cpu_count() or 1) // workers)
    parts = [out.with_name(f"{out.name}.part{k}") for k in range(workers)]
    if out.exists():  # runs already merged count as done for every worker: seed each part with them
        for part in parts:
            if not part.exists():
                part.write_text(out.read_text())
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        jobs = [pool.submit(_collect_worker, cfg, part, count, steps, train_subset, eval_size, seed, k, workers,
                            threads) for k, part in enumerate(parts)]
        for job in as_completed(jobs):
            say(f"a worker finished with {job.result()} runs in its file")
    merged = merge(parts, out)
    for part in parts:
        part.unlink()
    say(f"{len(merged['runs'])} fine-tunes in {out}")
    return merged


def merge(parts: list[Path], out: Path) -> dict[str, Any]:
    """One file with the runs of several workers' files (the first file's header)."""
    datas = [json.loads(p.read_text()) for p in parts if p.exists()]
    runs, seen = [], set()
    for d in datas:  # parts seeded with the same earlier runs hold them once each
        for r in d["runs"]:
            key = (json.dumps(r["ranks"]), r["method"], r["subset_index"])
            if key not in seen:
                seen.add(key)
                runs.append(r)
    merged = {**datas[0], "runs": runs}
    out.write_text(json.dumps(merged, separators=(",", ":")))
    return merged
