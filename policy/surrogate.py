"""The surrogate environment: test loss and accuracy predicted from per-projection ranks and data features.

Robust linear models are fitted on real fine-tunes (policy/finetunes.py, shipped in policy/data/) and their predictions
clipped to the measured range; AdaLoRA replays its real runs. `cross_validate` measures the held-out error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from policy.problem import Outcome, Problem
from policy.rank_env import RankEnv

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

REPO_ROOT = Path(__file__).resolve().parent.parent  # a relative policy.surrogate_data is looked up here too


def surrogate_features(ranks: np.ndarray, modules: list[str], shapes: dict[str, tuple[int, int]], r_max: int,
                       entropy: np.ndarray, oov: np.ndarray) -> np.ndarray:
    """Features of rank vectors [B, n]: the share of projections adapted (all, attention, feed-forward), log LoRA
    parameters (and squared, and times each data feature), and the data features. Per-kind and per-layer mean
    log-ranks fitted worse out of sample on the 100-step regime (5-fold: loss 0.62, accuracy 0.81 of the mean
    predictor's error, against 0.56 / 0.63 here): 100 steps reward how much is adapted, not where."""
    ranks = np.atleast_2d(np.asarray(ranks, np.float64))
    adapted = ranks > 0
    attention = np.array(["attention" in m for m in modules])
    per_rank = np.array([sum(shapes[m]) for m in modules], np.float64)
    params = np.log1p(ranks @ per_rank) / np.log1p(r_max * per_rank.sum())
    ent = np.asarray(entropy, np.float64) * np.ones(len(ranks))
    oov_ = np.asarray(oov, np.float64) * np.ones(len(ranks))
    cols = [adapted.mean(axis=1), adapted[:, attention].mean(axis=1) if attention.any() else np.zeros(len(ranks)),
            adapted[:, ~attention].mean(axis=1) if (~attention).any() else np.zeros(len(ranks)),
            params, params ** 2, ent * params, oov_ * params, ent, oov_]
    return np.stack(cols, axis=1)


@dataclass
class RobustLinear:
    """Least-absolute-deviation regression (IRLS) on standardized features with a ridge penalty picked by k-fold
    error: a few fine-tunes that stay on the plateau do not drag every prediction, as they do under squares."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float
    cv_mae: float

    @staticmethod
    def _solve(z: np.ndarray, y: np.ndarray, alpha: float, iterations: int = 40) -> tuple[np.ndarray, float]:
        a = np.c_[np.ones(len(z)), z]
        penalty = alpha * np.diag([0.0] + [1.0] * z.shape[1])
        w = np.ones(len(y))
        beta = np.zeros(a.shape[1])
        for _ in range(iterations):
            beta = np.linalg.solve(a.T @ (w[:, None] * a) + penalty, a.T @ (w * y))
            w = 1.0 / np.maximum(np.abs(y - a @ beta), 1e-3)
        return beta[1:], float(beta[0])

    @staticmethod
    def fit(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0),
            folds: int = 5) -> RobustLinear:
        """Fit at each penalty in `alphas`, keep the one with the lowest `folds`-fold mean absolute error."""
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - mean) / std
        best = None
        k = min(folds, len(y))
        for alpha in alphas:
            errs = []
            for f in range(k):
                test = np.arange(len(y)) % k == f
                coef, icpt = RobustLinear._solve(z[~test], y[~test], alpha)
                errs.append(np.abs(z[test] @ coef + icpt - y[test]))
            mae = float(np.concatenate(errs).mean())
            if best is None or mae < best[1]:
                best = (alpha, mae)
        alpha, mae = best
        coef, icpt = RobustLinear._solve(z, y, alpha)
        return RobustLinear(mean, std, coef, icpt, alpha, mae)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for feature rows x."""
        return ((x - self.mean) / self.std) @ self.coef + self.intercept


class SurrogateEnv(RankEnv):
    """Loss and accuracy predicted by robust linear models fitted on real fine-tunes (clipped to the measured range);
    AdaLoRA replays its real runs."""

    def __init__(self, problem: Problem, data: dict[str, Any], episode_steps: int = 15, snr_noise_db: float = 0.5,
                 seed: int = 0, holdout: tuple[int, int] | None = None) -> None:
        """`holdout` = (fold, folds) leaves the runs i with i % folds == fold out of the fit (to measure the error)."""
        if list(data["modules"]) != list(problem.modules):
            raise ValueError("the surrogate data was measured on other projections than this problem's")
        self.data_file = data
        runs = data["runs"]
        held = [i for i in range(len(runs)) if holdout and i % holdout[1] == holdout[0]]
        fit_runs = [r for i, r in enumerate(runs) if i not in held]
        feats = sorted({(round(r["entropy"], 6), round(r["oov_rate"], 6)) for r in runs})
        x = self._x([r["ranks"] for r in fit_runs], [r["entropy"] for r in fit_runs], [r["oov_rate"] for r in fit_runs],
                    problem)
        self.loss_model = RobustLinear.fit(x, np.array([r["loss"] for r in fit_runs]))
        self.acc_model = RobustLinear.fit(x, np.array([r["accuracy"] for r in fit_runs]))
        self.fit_means = (float(np.mean([r["loss"] for r in fit_runs])), float(np.mean([r["accuracy"] for r in fit_runs])))
        self.heldout = [runs[i] for i in held]
        # never predict beyond what was measured: a linear fit extrapolates, and a policy would exploit that
        self.loss_range = (min(r["loss"] for r in fit_runs), max(r["loss"] for r in fit_runs))
        self.acc_range = (min(r["accuracy"] for r in fit_runs), max(r["accuracy"] for r in fit_runs))
        self.base_loss, self.base_accuracy = float(data["base_loss"]), float(data["base_accuracy"])
        self.adalora_runs = {int(r["method"].split(":")[1]): r for r in runs if r["method"].startswith("adalora")}
        super().__init__(problem, feats, episode_steps, snr_noise_db, seed=seed)

    @staticmethod
    def _x(ranks: Any, entropy: Any, oov: Any, problem: Problem) -> np.ndarray:
        return surrogate_features(np.asarray(ranks), problem.modules, problem.shapes, problem.r_max,
                                  np.asarray(entropy), np.asarray(oov))

    def predict(self, ranks: list[list[int]], entropy: float | np.ndarray,
                oov: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (loss, accuracy) of rank vectors, each clipped to the range the fit saw."""
        x = self._x(ranks, entropy, oov, self.problem)
        loss, acc = self.loss_model.predict(x), self.acc_model.predict(x)
        return np.clip(loss, *self.loss_range), np.clip(acc, *self.acc_range)

    def quality(self, ranks: list[int], data: int) -> tuple[float, float]:
        if not any(ranks):
            return self.base_loss, self.base_accuracy
        entropy, oov = self.data_features[data]
        loss, acc = self.predict([ranks], entropy, oov)
        return float(loss[0]), float(acc[0])

    def adalora(self, target_rank: int, snr_db: float, data: int = 0) -> Outcome:
        if not self.adalora_runs:
            raise ValueError("the surrogate data holds no AdaLoRA runs")
        r = self.adalora_runs[min(self.adalora_runs, key=lambda k: abs(k - target_rank))]
        return self.problem.score(r["ranks"], snr_db, r["loss"], r["accuracy"])

    def report(self) -> dict[str, Any]:
        """Fit quality: the inner k-fold MAE the penalty was picked by, held-out MAE (when runs were held out), and the spread of the data."""
        runs = self.data_file["runs"]
        out = {"runs": len(runs), "loss_cv_mae": self.loss_model.cv_mae, "accuracy_cv_mae": self.acc_model.cv_mae,
               "loss_std": float(np.std([r["loss"] for r in runs])),
               "accuracy_std": float(np.std([r["accuracy"] for r in runs])), "heldout": len(self.heldout)}
        if self.heldout:
            out.update(self.heldout_errors())
        return out

    def heldout_errors(self) -> dict[str, float]:
        """MAE of the predicted loss and accuracy on the held-out runs, and of a predictor that always says the
        mean of the fitted runs (what the fit has to beat)."""
        held = [r for r in self.heldout if r["method"] == "lora"]
        loss, acc = self.predict([r["ranks"] for r in held], np.array([r["entropy"] for r in held]),
                                 np.array([r["oov_rate"] for r in held]))
        y_loss, y_acc = np.array([r["loss"] for r in held]), np.array([r["accuracy"] for r in held])
        return {"heldout_loss_mae": float(np.abs(loss - y_loss).mean()),
                "heldout_accuracy_mae": float(np.abs(acc - y_acc).mean()),
                "heldout_loss_mae_of_mean": float(np.abs(self.fit_means[0] - y_loss).mean()),
                "heldout_accuracy_mae_of_mean": float(np.abs(self.fit_means[1] - y_acc).mean())}


def cross_validate(problem: Problem, data: dict[str, Any], folds: int = 5) -> dict[str, float]:
    """k-fold held-out error of the surrogate: each real fine-tune is predicted by a fit that never saw it."""
    errs = [SurrogateEnv(problem, data, holdout=(f, folds)).heldout_errors() for f in range(folds)]
    return {"folds": folds, **{k: float(np.mean([e[k] for e in errs])) for k in errs[0]}}


def load_surrogate_data(cfg: TestbedConfig) -> dict[str, Any]:
    """The fine-tune records at policy.surrogate_data (a relative path missing here is taken from the repository)."""
    path = Path(cfg.policy.surrogate_data).expanduser()
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    return json.loads(path.read_text())
