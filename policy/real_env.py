"""The real environment: every step is a real LoRA fine-tune of the configured model (slow, exact).

Each rank vector is fine-tuned on one of a few training subsets and evaluated on the test split; results are
cached by (rank vector, subset), so a repeated choice costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
            else:
                run = finetune_once(self.cfg, self.splits, list(ranks), self.steps, self.subset, data, self.eval_size)
                self.cache[key] = (run["loss"], run["accuracy"])
        return self.cache[key]

    def adalora(self, target_rank: int, snr_db: float, data: int = 0) -> Outcome:
        key = ("adalora", target_rank, data)
        if key not in self.cache:
            run = finetune_once(self.cfg, self.splits, None, self.steps, self.subset, data, self.eval_size, target_rank)
            self.cache[key] = (run["loss"], run["accuracy"], run["ranks"])
        loss, acc, ranks = self.cache[key]
        return self.problem.score(ranks, snr_db, loss, acc)
