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

from policy.executor import Executor, InlineExecutor, Resources, map_jobs, one_line
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


_SPLITS: dict[str, Any] = {}
_BASE: dict[str, tuple[Any, Any]] = {}


def _own_rng() -> Any:
    """A context in which torch's generators (CPU and every GPU) may be drawn from or reseeded: restored after."""
    import torch

    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())))


def task_splits(cfg: TestbedConfig) -> Splits:
    """The configured task's splits, loaded once per process (jobs in a worker share them)."""
    from ml.data import load_task

    key = cfg.data.model_dump_json()
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = load_task(cfg.data)
    return _SPLITS[key]


def base_model(cfg: TestbedConfig, num_labels: int, fresh: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) of the configured base model, loaded once per process and kept (a worker or an
    environment actor loads it once, not per fine-tune): `fresh` gives a deep copy to fine-tune, else the kept
    model to read only. A model dispatched over several devices is not copied: it is loaded anew each time."""
    import copy

    from ml.models import load_classifier

    key = f"{cfg.model.model_dump_json()}|{num_labels}"
    if key not in _BASE:
        _BASE.clear()
        with _own_rng():  # loading draws (then overwrites) the head: the caller's generator stays
            _BASE[key] = load_classifier(cfg.model, num_labels)
    model, tokenizer = _BASE[key]
    if len(set((getattr(model, "hf_device_map", None) or {"": 0}).values())) > 1:
        del _BASE[key]
        return model, tokenizer
    return (copy.deepcopy(model) if fresh else model), tokenizer


def finetune_once(cfg: TestbedConfig, splits: Splits, ranks: list[int] | None, steps: int, train_subset: int,
                  subset_index: int, eval_size: int, adalora_target_rank: int | None = None) -> dict[str, Any]:
    """One real fine-tune (LoRA at `ranks`, or AdaLoRA) on a train subset; its loss and accuracy on the test split.
    The caller's torch generator is left as it was (the fine-tune seeds its own), so a learner stepping a real
    environment here draws the same numbers as one whose environments run elsewhere."""
    with _own_rng():
        return _finetune(cfg, splits, ranks, steps, train_subset, subset_index, eval_size, adalora_target_rank)


def _finetune(cfg: TestbedConfig, splits: Splits, ranks: list[int] | None, steps: int, train_subset: int,
              subset_index: int, eval_size: int, adalora_target_rank: int | None) -> dict[str, Any]:
    from ml import finetune as ft
    from ml.features import batch_features, vocabulary
    from ml.models import head_module_names
    from adapters.ranks import adaptable_modules

    model, tokenizer = base_model(cfg, splits.num_labels)
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
            adalora_ranks: tuple[int, ...] = (2, 4, 8), seed: int = 0, executor: Executor | None = None,
            resources: Resources = Resources(), say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run `count` LoRA fine-tunes (plus one AdaLoRA run per target rank) on `executor` (default: here, one after
    the other) and write them to `out` as each finishes, in plan order whatever order they finish in.

    A file that already holds runs is resumed: designs already measured are skipped; a file of another regime is
    refused.
    """
    from adapters.ranks import adaptable_modules, module_shapes

    splits = task_splits(cfg)
    base, tokenizer = base_model(cfg, splits.num_labels, fresh=False)
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
            if (f"adalora:{target}" if target else json.dumps(ranks)) not in done]
    jobs = [(cfg, plan[i][0], steps, train_subset, subset_of(i, seed), eval_size, plan[i][1]) for i in todo]
    kept, new = list(data["runs"]), {}

    def failed(j: int, exc: BaseException, attempt: int) -> None:
        say(f"fine-tune {todo[j] + 1}/{len(plan)} failed (attempt {attempt}): {one_line(exc)}")

    bar = progress(len(todo), "fine-tunes", unit="run")
    for j, run in map_jobs(executor or InlineExecutor(), _collect_job, jobs, resources, on_failure=failed):
        new[todo[j]] = run
        data["runs"] = kept + [new[i] for i in sorted(new)]
        tmp = out.with_name(out.name + ".tmp")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        tmp.replace(out)
        bar.update()
        say(f"[{todo[j] + 1}/{len(plan)}] {run['method']} rank sum {sum(run['ranks'])}: loss {run['loss']:.4f} "
            f"accuracy {run['accuracy']:.3f} ({run['seconds']} s)")
    bar.close()
    return data


def _collect_job(cfg: TestbedConfig, ranks: list[int] | None, steps: int, train_subset: int, subset_index: int,
                 eval_size: int, target: int | None) -> dict[str, Any]:
    """One planned fine-tune of `collect`, wherever the executor runs it."""
    return finetune_once(cfg, task_splits(cfg), ranks, steps, train_subset, subset_index, eval_size, target)
