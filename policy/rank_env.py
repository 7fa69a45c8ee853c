"""Episodes of rank decisions on a drifting channel: the interface both environments share.

Each step scores one rank vector at the SNR the edge measured; then the channel's SNR takes a random step inside
the problem's range and the next data batch is drawn. Subclasses say how good a rank vector is (`quality`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future

import numpy as np

from policy.problem import Outcome, Problem


class RankEnv(ABC):
    """Episodes of rank decisions on a channel whose SNR drifts; subclasses say how good a rank vector is."""

    def __init__(self, problem: Problem, data_features: list[tuple[float, float]], episode_steps: int = 15,
                 snr_noise_db: float = 0.5, snr_step_db: float = 4.0, seed: int = 0) -> None:
        self.problem = problem
        self.data_features = data_features  # (entropy, oov_rate) of each data batch the env can draw
        self.episode_steps = episode_steps
        self.snr_noise_db = snr_noise_db
        self.snr_step_db = snr_step_db
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start over as if built with `seed` (what it has cached stays: a rank vector's quality does not change)."""
        self.rng = np.random.default_rng(seed)
        self.steps_taken = 0
        self.reset()

    @abstractmethod
    def quality(self, ranks: list[int], data: int) -> tuple[float, float]:
        """(test loss, test accuracy) after fine-tuning with `ranks` on data batch `data`."""

    def adalora(self, target_rank: int, snr_db: float, data: int = 0) -> Outcome:
        """The AdaLoRA baseline at an average rank budget (it picks its own ranks while training)."""
        raise NotImplementedError

    def outcome(self, ranks: list[int], snr_db: float, data: int = 0) -> Outcome:
        """Quality, payload, airtime and reward of a rank vector at an SNR on data batch `data`."""
        loss, acc = self.quality(list(ranks), data)
        return self.problem.score(ranks, snr_db, loss, acc)

    def _measured(self) -> float:
        return float(self.snr_db + self.rng.normal(0.0, self.snr_noise_db))

    def obs(self) -> np.ndarray:
        """The state vector the policy sees now (measured SNR, the batch's features, current ranks)."""
        entropy, oov = self.data_features[self.data]
        return self.problem.observe(self.measured_db, self.problem.link.occupied_bandwidth_hz, entropy, oov,
                                    self.ranks)

    def reset(self, snr_db: float | None = None) -> np.ndarray:
        """Start an episode at `snr_db` (default: drawn from the problem's range) with nothing adapted."""
        lo, hi = self.problem.snr_db_range
        self.snr_db = float(self.rng.uniform(lo, hi) if snr_db is None else snr_db)
        self.measured_db = self._measured()
        self.data = int(self.rng.integers(len(self.data_features)))
        self.ranks = [0] * self.problem.n
        self.t = 0
        return self.obs()

    def step(self, ranks: list[int]) -> tuple[np.ndarray, float, bool, Outcome]:
        """Fine-tune with `ranks` at the measured SNR; the channel then drifts and the next batch is drawn."""
        out = self.outcome(ranks, self.measured_db, self.data)
        self.steps_taken += 1
        self.t += 1
        self.ranks = list(ranks)
        lo, hi = self.problem.snr_db_range
        self.snr_db = float(np.clip(self.snr_db + self.rng.normal(0.0, self.snr_step_db), lo, hi))
        self.measured_db = self._measured()
        self.data = int(self.rng.integers(len(self.data_features)))
        return self.obs(), out.reward, self.t >= self.episode_steps, out

    def step_async(self, ranks: list[int]) -> Future:
        """`step` as a future (done here at once; an environment in an actor steps while others do)."""
        future: Future = Future()
        future.set_result(self.step(ranks))
        return future
