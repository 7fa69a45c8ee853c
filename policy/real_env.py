"""The real environment: every step is a real LoRA fine-tune of the configured model (slow, exact).

Each rank vector is fine-tuned on one of a few training subsets and evaluated on the test split; results are
cached by (rank vector, subset), so a repeated choice costs nothing. The base model is loaded once per process
and copied for each fine-tune. `plan` lists the fine-tunes a walk (a sweep) needs; `prefetch` runs them as jobs
on an executor (local processes, a Ray cluster) into the cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from policy.executor import Executor, Resources, map_jobs
from policy.finetunes import _eval, base_model, finetune_once, task_splits
from policy.problem import Outcome, Problem
from policy.rank_env import RankEnv

if TYPE_CHECKING:
    from testbed.config import TestbedConfig


class RealEnv(RankEnv):
    """Every step is a real LoRA fine-tune of the configured model on a training subset (cached by rank vector)."""

    def __init__(self, problem: Problem, cfg: TestbedConfig, episode_steps: int = 15, snr_noise_db: float = 0.5,
                 seed: int = 0, subsets: int = 3) -> None:
        from ml.features import batch_features, vocabulary

        self.cfg = cfg
        self.splits = task_splits(cfg)
        p = cfg.policy
        self.steps, self.subset, self.eval_size = p.real_steps, p.real_train_subset, p.real_eval_size
        feats = []
        for k in range(subsets):
            start = (k * self.subset) % max(1, len(self.splits.train) - self.subset + 1)
            texts = [t for t, _ in self.splits.train[start:start + self.subset]]
            vocab = vocabulary(texts)
            feats.append((batch_features(texts, vocab)["lexical_entropy"],
                          batch_features([t for t, _ in self.splits.test[:self.eval_size]], vocab)["oov_rate"]))
        self.cache: dict[tuple, tuple] = {}
        self.planning: set[tuple] | None = None  # while a set: quality/adalora only note the fine-tunes they need
        self._base: tuple[float, float] | None = None
        super().__init__(problem, feats, episode_steps, snr_noise_db, seed=seed)

    def quality(self, ranks: list[int], data: int) -> tuple[float, float]:
        key = (tuple(ranks), data)
        if key not in self.cache:
            if not any(ranks):
                if self._base is None:
                    model, tok = base_model(self.cfg, self.splits.num_labels, fresh=False)
                    self._base = _eval(model, tok, self.splits.test[:self.eval_size], self.cfg.model.max_length)
                self.cache[key] = self._base
            elif self.planning is not None:
                self.planning.add(key)
                return math.nan, math.nan
            else:
                run = finetune_once(self.cfg, self.splits, list(ranks), self.steps, self.subset, data, self.eval_size)
                self.cache[key] = (run["loss"], run["accuracy"])
        return self.cache[key]

    def adalora(self, target_rank: int, snr_db: float, data: int = 0) -> Outcome:
        key = ("adalora", target_rank, data)
        if key not in self.cache and self.planning is not None:
            self.planning.add(key)
            return self.problem.score([0] * self.problem.n, snr_db, math.nan, math.nan)
        if key not in self.cache:
            run = finetune_once(self.cfg, self.splits, None, self.steps, self.subset, data, self.eval_size, target_rank)
            self.cache[key] = (run["loss"], run["accuracy"], run["ranks"])
        loss, acc, ranks = self.cache[key]
        return self.problem.score(ranks, snr_db, loss, acc)

    def plan(self, walk: Callable[[], Any]) -> set[tuple]:
        """The fine-tunes `walk` (e.g. a sweep) would run, without running them (results it sees are NaN)."""
        self.planning = set()
        try:
            walk()
            return self.planning
        finally:
            self.planning = None

    def prefetch(self, keys: Iterable[tuple], executor: Executor, resources: Resources = Resources(),
                  on_result: Callable[[tuple, tuple], None] | None = None,
                  on_failure: Callable[[tuple, BaseException, int], None] | None = None) -> int:
        """Run the fine-tunes named by `keys` (from `plan`) that the cache lacks, as jobs on `executor`, into the
        cache; `on_result(key, value)` as each finishes (to keep it), `on_failure(key, error, attempt)` when a job
        fails (it is retried). Returns how many ran."""
        from testbed.progress import progress

        todo = [k for k in sorted(keys, key=repr) if k not in self.cache]
        bar = progress(len(todo), "fine-tunes", unit="run")
        failed = (lambda j, exc, attempt: on_failure(todo[j], exc, attempt)) if on_failure else None
        for j, value in map_jobs(executor, _finetune_job, [(self.cfg, key) for key in todo], resources,
                                 on_failure=failed):
            self.cache[todo[j]] = value
            if on_result:
                on_result(todo[j], value)
            bar.update()
        bar.close()
        return len(todo)


def _finetune_job(cfg: TestbedConfig, key: tuple) -> tuple:
    """One cache entry of RealEnv, as a job: (loss, accuracy) of (ranks, data), or AdaLoRA's with its ranks."""
    p = cfg.policy
    splits = task_splits(cfg)
    if key[0] == "adalora":
        run = finetune_once(cfg, splits, None, p.real_steps, p.real_train_subset, key[2], p.real_eval_size, key[1])
        return run["loss"], run["accuracy"], run["ranks"]
    run = finetune_once(cfg, splits, list(key[0]), p.real_steps, p.real_train_subset, key[1], p.real_eval_size)
    return run["loss"], run["accuracy"]


def key_to_json(key: tuple, value: tuple) -> dict[str, Any]:
    """A cache entry as JSON (a line of a sweep's finetunes.jsonl)."""
    return {"key": [list(k) if isinstance(k, tuple) else k for k in key], "value": list(value)}


def key_from_json(record: dict[str, Any]) -> tuple[tuple, tuple]:
    """The cache entry `key_to_json` wrote."""
    key, value = record["key"], record["value"]
    if key[0] == "adalora":
        return ("adalora", int(key[1]), int(key[2])), (float(value[0]), float(value[1]), [int(r) for r in value[2]])
    return (tuple(int(r) for r in key[0]), int(key[1])), (float(value[0]), float(value[1]))
