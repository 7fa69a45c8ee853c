"""The rank decision problem: state, action, cost and reward, with a real and a surrogate environment behind it.

State (numpy float32, 4 + n): [normalized measured SNR, normalized bandwidth, lexical entropy, OOV rate,
ranks / r_max]. Action: one rank per adapted projection, 0..r_max (0 leaves it out). Reward:
-loss - cost_weight * cost - deadline_penalty * (airtime > deadline), where cost is the real airtime at the MCS
the link picks for the measured SNR (framing, pilots, FEC and expected repeats included) in seconds, or the
paper's ideal Shannon airtime. The two environments differ only in `quality`: the real one fine-tunes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from policy.cost import LinkModel, lora_payload_bytes
from policy.state import PolicyState

BANDWIDTH_REF_HZ = 1.0e6  # the bandwidth feature is bandwidth_hz / 1 MHz
OVERHEAD_BYTES = 16384  # manifest + classifier head (as `airlora run` starts out before it calibrates)


@dataclass
class Outcome:
    """What one rank vector did at one SNR: quality, payload, airtime, reward."""

    ranks: list[int]
    snr_db: float
    loss: float
    accuracy: float
    payload_bytes: int
    airtime_s: float
    cost: float
    reward: float
    missed_deadline: bool

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "ranks"}


@dataclass(frozen=True)
class Problem:
    """The fixed parts of the decision problem: projections, link, cost mode, reward weights."""

    modules: list[str]
    shapes: dict[str, tuple[int, int]]
    link: LinkModel
    quant: str = "nf4"
    block_size: int = 64
    overhead_bytes: int = OVERHEAD_BYTES
    r_max: int = 16
    cost_mode: str = "real"
    cost_weight: float = 0.1
    deadline_s: float = 20.0
    deadline_penalty: float = 10.0
    snr_db_range: tuple[float, float] = (-5.0, 20.0)

    @property
    def n(self) -> int:
        return len(self.modules)

    @property
    def obs_dim(self) -> int:
        return 4 + self.n

    @cached_property
    def _bytes_table(self) -> np.ndarray:
        """[n, r_max + 1]: payload bytes of each module at each rank (exact, from lora_payload_bytes)."""
        return np.array([[lora_payload_bytes({m: r}, self.shapes, self.quant, self.block_size, 0)
                          for r in range(self.r_max + 1)] for m in self.modules], np.int64)

    def payload_bytes(self, ranks: list[int]) -> int:
        """Exact payload bytes of a rank vector (0 when nothing is adapted: no adapter is sent)."""
        if not any(ranks):
            return 0
        r = np.clip(np.asarray(ranks, np.int64), 0, self.r_max)
        return int(self._bytes_table[np.arange(self.n), r].sum()) + self.overhead_bytes

    @cached_property
    def _packet_samples(self) -> dict:
        return {}

    def airtime_s(self, payload_bytes: int, snr_db: float) -> float:
        """Airtime of a payload in the configured cost mode: LinkModel.airtime_s (real) or shannon_airtime_s.

        The real one is computed packet-wise as radio.airtime.burst_samples does (full packets are all alike),
        so it equals LinkModel.airtime_s exactly without walking every packet.
        """
        if payload_bytes == 0:
            return 0.0
        if self.cost_mode == "shannon":
            return self.link.shannon_airtime_s(payload_bytes, snr_db)
        from radio.airtime import burst_samples
        from radio.pulse import rrc_taps

        link = self.link
        mcs = link.mcs_for(snr_db)
        cache = self._packet_samples

        def one(size: int) -> int:  # samples of a one-packet burst minus the filter tail
            key = (size, mcs.index)
            if key not in cache:
                tail = rrc_taps(link.samples_per_symbol, link.rolloff).size - 1
                cache[key] = burst_samples(size, link.packet_payload_bytes, mcs, link.samples_per_symbol,
                                           link.rolloff) - tail
            return cache[key]

        full, rest = divmod(payload_bytes, link.packet_payload_bytes)
        samples = full * one(link.packet_payload_bytes) + (one(rest) if rest else 0)
        samples += rrc_taps(link.samples_per_symbol, link.rolloff).size - 1
        return samples / link.sample_rate_hz / (1.0 - min(link.target_per, 0.9))

    def observe(self, snr_db: float, bandwidth_hz: float, entropy: float, oov_rate: float,
                ranks: list[int]) -> np.ndarray:
        lo, hi = self.snr_db_range
        head = [(snr_db - lo) / (hi - lo), bandwidth_hz / BANDWIDTH_REF_HZ, entropy, oov_rate]
        return np.asarray(head + [r / self.r_max for r in ranks], np.float32)

    def observe_state(self, state: PolicyState) -> np.ndarray:
        """The state vector of a PolicyState (the edge's measured SNR, the data's features, current ranks)."""
        return self.observe(state.snr_db, state.bandwidth_hz, state.entropy, state.oov_rate, state.rank_vector())

    def to_ranks(self, action: np.ndarray) -> list[int]:
        """An action in [-1, 1]^n to ranks 0..r_max (rounded; -1 leaves the projection out).

        An adapter needs one adapted projection at least: all-zero becomes rank 1 on the highest action.
        """
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        ranks = [int(r) for r in np.rint((a + 1.0) / 2.0 * self.r_max)]
        if not any(ranks):
            ranks[int(np.argmax(a))] = 1
        return ranks

    def to_action(self, ranks: list[int]) -> np.ndarray:
        return np.asarray(ranks, np.float32) / self.r_max * 2.0 - 1.0

    def score(self, ranks: list[int], snr_db: float, loss: float, accuracy: float) -> Outcome:
        """Payload, airtime, cost and reward of a rank vector whose quality is known."""
        size = self.payload_bytes(ranks)
        airtime = self.airtime_s(size, snr_db)
        missed = airtime > self.deadline_s
        reward = -loss - self.cost_weight * airtime - (self.deadline_penalty if missed else 0.0)
        return Outcome(list(ranks), float(snr_db), float(loss), float(accuracy), size, float(airtime),
                       float(airtime), float(reward), bool(missed))


class RankEnv(ABC):
    """Episodes of rank decisions on a channel whose SNR drifts; subclasses say how good a rank vector is."""

    def __init__(self, problem: Problem, data_features: list[tuple[float, float]], episode_steps: int = 15,
                 snr_noise_db: float = 0.5, snr_step_db: float = 4.0, seed: int = 0) -> None:
        self.problem = problem
        self.data_features = data_features  # (entropy, oov_rate) of each data batch the env can draw
        self.episode_steps = episode_steps
        self.snr_noise_db = snr_noise_db
        self.snr_step_db = snr_step_db
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
        loss, acc = self.quality(list(ranks), data)
        return self.problem.score(ranks, snr_db, loss, acc)

    def _measured(self) -> float:
        return float(self.snr_db + self.rng.normal(0.0, self.snr_noise_db))

    def obs(self) -> np.ndarray:
        entropy, oov = self.data_features[self.data]
        return self.problem.observe(self.measured_db, self.problem.link.bandwidth_hz, entropy, oov, self.ranks)

    def reset(self, snr_db: float | None = None) -> np.ndarray:
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


# --- the surrogate: accuracy and loss as a function of per-projection ranks and data features -------------------

def _kind(module: str) -> str:
    from policy.finetunes import kind_of

    return kind_of(module)


def _groups(modules: tuple[str, ...]) -> np.ndarray:
    """[groups, n] averaging matrix: one row per projection kind, then one per layer."""
    from policy.finetunes import layer_of

    rows = []
    for key, values in ((_kind, sorted({_kind(m) for m in modules})), (layer_of, sorted({layer_of(m) for m in modules}))):
        for v in values:
            row = np.array([key(m) == v for m in modules], np.float64)
            rows.append(row / row.sum())
    return np.stack(rows)


_GROUPS: dict[tuple[str, ...], np.ndarray] = {}


def surrogate_features(ranks: np.ndarray, modules: list[str], shapes: dict[str, tuple[int, int]], r_max: int,
                       entropy: np.ndarray, oov: np.ndarray) -> np.ndarray:
    """Features of rank vectors [B, n]: per-kind and per-layer mean log(1+r), adapted share, log LoRA params."""
    key = tuple(modules)
    if key not in _GROUPS:
        _GROUPS[key] = _groups(key)
    ranks = np.atleast_2d(np.asarray(ranks, np.float64))
    lr = np.log1p(ranks) / np.log1p(r_max)
    cols = list((lr @ _GROUPS[key].T).T)
    per_rank = np.array([sum(shapes[m]) for m in modules], np.float64)
    params = np.log1p(ranks @ per_rank) / np.log1p(r_max * per_rank.sum())
    cols += [(ranks > 0).mean(axis=1), params, params ** 2, np.asarray(entropy, np.float64) * np.ones(len(ranks)),
             np.asarray(oov, np.float64) * np.ones(len(ranks))]
    return np.stack(cols, axis=1)


@dataclass
class Ridge:
    """Ridge regression on standardized features (closed form) with the penalty picked by leave-one-out error."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float
    loo_mae: float

    @staticmethod
    def fit(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 3.0, 10.0, 30.0)) -> Ridge:
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - mean) / std
        yc = y - y.mean()
        best = None
        for a in alphas:
            h = z @ np.linalg.solve(z.T @ z + a * np.eye(z.shape[1]), z.T)
            resid = (yc - h @ yc) / np.clip(1.0 - np.diag(h) - 1.0 / len(y), 1e-6, None)  # LOO residuals
            mae = float(np.abs(resid).mean())
            if best is None or mae < best[1]:
                best = (a, mae)
        a, mae = best
        coef = np.linalg.solve(z.T @ z + a * np.eye(z.shape[1]), z.T @ yc)
        return Ridge(mean, std, coef, float(y.mean()), a, mae)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) @ self.coef + self.intercept


class SurrogateEnv(RankEnv):
    """Loss and accuracy predicted by ridge models fitted on real fine-tunes (clipped to the measured range);
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
        self.loss_model = Ridge.fit(x, np.array([r["loss"] for r in fit_runs]))
        self.acc_model = Ridge.fit(x, np.array([r["accuracy"] for r in fit_runs]))
        self.heldout = [runs[i] for i in held]
        # never predict beyond what was measured: a linear fit extrapolates, and a policy would exploit that
        self.loss_range = (min(r["loss"] for r in fit_runs), max(r["loss"] for r in fit_runs))
        self.acc_range = (min(r["accuracy"] for r in fit_runs), max(r["accuracy"] for r in fit_runs))
        self.base_loss, self.base_accuracy = float(data["base_loss"]), float(data["base_accuracy"])
        self.adalora_runs = {int(r["method"].split(":")[1]): r for r in runs if r["method"].startswith("adalora")}
        super().__init__(problem, feats, episode_steps, snr_noise_db, seed=seed)

    @staticmethod
    def _x(ranks, entropy, oov, problem: Problem) -> np.ndarray:
        return surrogate_features(np.asarray(ranks), problem.modules, problem.shapes, problem.r_max,
                                  np.asarray(entropy), np.asarray(oov))

    def predict(self, ranks: list[list[int]], entropy: float, oov: float) -> tuple[np.ndarray, np.ndarray]:
        x = self._x(ranks, entropy, oov, self.problem)
        return np.clip(self.loss_model.predict(x), *self.loss_range), np.clip(self.acc_model.predict(x), *self.acc_range)

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
        """Fit quality: leave-one-out MAE, held-out MAE (when runs were held out), and the spread of the data."""
        runs = self.data_file["runs"]
        out = {"runs": len(runs), "loss_loo_mae": self.loss_model.loo_mae, "accuracy_loo_mae": self.acc_model.loo_mae,
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
                "heldout_loss_mae_of_mean": float(np.abs(self.loss_model.intercept - y_loss).mean()),
                "heldout_accuracy_mae_of_mean": float(np.abs(self.acc_model.intercept - y_acc).mean())}


def cross_validate(problem: Problem, data: dict[str, Any], folds: int = 5) -> dict[str, float]:
    """k-fold held-out error of the surrogate: each real fine-tune is predicted by a fit that never saw it."""
    errs = [SurrogateEnv(problem, data, holdout=(f, folds)).heldout_errors() for f in range(folds)]
    return {"folds": folds, **{k: float(np.mean([e[k] for e in errs])) for k in errs[0]}}


class RealEnv(RankEnv):
    """Every step is a real LoRA fine-tune of the configured model on a training subset (cached by rank vector)."""

    def __init__(self, problem: Problem, cfg, episode_steps: int = 15, snr_noise_db: float = 0.5, seed: int = 0,
                 subsets: int = 3) -> None:
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
        self.cache: dict[tuple, tuple[float, float]] = {}
        self._base: tuple[float, float] | None = None
        super().__init__(problem, feats, episode_steps, snr_noise_db, seed=seed)

    def quality(self, ranks: list[int], data: int) -> tuple[float, float]:
        from policy.finetunes import _eval, finetune_once

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
        from policy.finetunes import finetune_once

        key = ("adalora", target_rank, data)
        if key not in self.cache:
            run = finetune_once(self.cfg, self.splits, None, self.steps, self.subset, data, self.eval_size, target_rank)
            self.cache[key] = (run["loss"], run["accuracy"], run["ranks"])
        loss, acc, ranks = self.cache[key]
        return self.problem.score(ranks, snr_db, loss, acc)


def problem_from_config(cfg, modules: list[str], shapes: dict[str, tuple[int, int]]) -> Problem:
    """The decision problem of a testbed config (link numbers from radio:, reward numbers from policy:)."""
    r, p = cfg.radio, cfg.policy
    link = LinkModel(r.sample_rate_hz, r.samples_per_symbol, r.rolloff, r.packet_payload_bytes, r.target_per)
    return Problem(list(modules), {m: tuple(s) for m, s in shapes.items()}, link, cfg.finetune.quant,
                   cfg.finetune.block_size, OVERHEAD_BYTES, p.r_max, p.cost, p.cost_weight, p.deadline_s,
                   p.deadline_penalty, tuple(p.snr_db_range))


def load_surrogate_data(cfg) -> dict[str, Any]:
    import json
    from pathlib import Path

    path = Path(cfg.policy.surrogate_data).expanduser()
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent.parent / path
    return json.loads(path.read_text())


def make_env(cfg, kind: str | None = None, seed: int = 0) -> RankEnv:
    """The configured environment: `surrogate` (fitted on the shipped real fine-tunes) or `real`."""
    kind = kind or cfg.policy.env
    if kind == "surrogate":
        data = load_surrogate_data(cfg)
        problem = problem_from_config(cfg, data["modules"], {m: tuple(s) for m, s in data["shapes"].items()})
        return SurrogateEnv(problem, data, cfg.policy.episode_steps, cfg.policy.snr_noise_db, seed)
    from ml.data import load_task
    from ml.models import projection_shapes

    modules, shapes = projection_shapes(cfg.model, cfg.finetune.target_modules, load_task(cfg.data).num_labels)
    problem = problem_from_config(cfg, modules, shapes)
    return RealEnv(problem, cfg, cfg.policy.episode_steps, cfg.policy.snr_noise_db, seed)
