"""The real environment: every step is a real LoRA fine-tune of the configured model (slow, exact).

Each rank vector is fine-tuned on one of a few training subsets and evaluated on the test split; results are
cached by (rank vector, subset), so a repeated choice costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from policy.finetunes import _eval, finetune_once
from policy.problem import Outcome, Problem
from policy.rank_env import RankEnv

if TYPE_CHECKING:
    from testbed.config import TestbedConfig


class RealEnv(RankEnv):
    """Every step is a real LoRA fine-tune of the configured model on a training subset (cached by rank vector)."""

    def __init__(self, problem: Problem, cfg: TestbedConfig, episode_steps: int = 15, snr_noise_db: float = 0.5,
                 seed: int = 0, subsets: int = 3) -> None:
        from ml.data import load_task
        from ml.features import batch_features, vocabulary

        self.cfg = cfg
        self.splits = load_task(cfg.data)
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
                    from ml.models import load_classifier

                    model, tok = load_classifier(self.cfg.model, self.splits.num_labels)
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

    def prefetch(self, keys: Iterable[tuple], workers: int, say: Callable[[str], None] | None = None) -> None:
        """Run the fine-tunes named by `keys` (from `plan`) over `workers` local processes into the cache."""
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from testbed.progress import progress

        todo = [k for k in sorted(keys, key=repr) if k not in self.cache]
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        bar = progress(len(todo), "fine-tunes", unit="run")
        with ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn")) as pool:
            jobs = {pool.submit(_finetune_job, self.cfg, key, threads): key for key in todo}
            for job in as_completed(jobs):
                self.cache[jobs[job]] = job.result()
                bar.update()
        bar.close()
        if say:
            say(f"real env: {len(todo)} fine-tunes over {workers} worker(s)")


def _finetune_job(cfg: TestbedConfig, key: tuple, threads: int) -> tuple:
    """One cache entry of RealEnv, in a worker process: (loss, accuracy) of (ranks, data), or AdaLoRA's with ranks."""
    import torch

    from ml.data import load_task

    torch.set_num_threads(threads)
    p = cfg.policy
    splits = load_task(cfg.data)
    if key[0] == "adalora":
        run = finetune_once(cfg, splits, None, p.real_steps, p.real_train_subset, key[2], p.real_eval_size, key[1])
        return run["loss"], run["accuracy"], run["ranks"]
    run = finetune_once(cfg, splits, list(key[0]), p.real_steps, p.real_train_subset, key[1], p.real_eval_size)
    return run["loss"], run["accuracy"]
