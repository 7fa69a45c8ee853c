"""The training loop shared by vanilla PPO and the hierarchical policy: episodes, updates, learning curve."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from policy.rank_env import RankEnv
from testbed.progress import progress

if TYPE_CHECKING:
    from policy.airllm import AirLlm
    from policy.remote_env import RemoteEnv
    from policy.vanilla_ppo import VanillaPpo

EVAL_SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)


def greedy_reward(learner: VanillaPpo | AirLlm, env: RankEnv, snrs_db: tuple[float, ...] = EVAL_SNRS_DB) -> float:
    """Mean reward of the learner's deterministic choice at fixed SNRs (first data batch, no current ranks)."""
    p = env.problem
    entropy, oov = env.data_features[0]
    obs = np.stack([p.observe(snr, p.link.occupied_bandwidth_hz, entropy, oov, [0] * p.n) for snr in snrs_db])
    ranks, _ = learner.act(obs, explore=False)
    return float(np.mean([env.outcome(r, snr, 0).reward for r, snr in zip(ranks, snrs_db)]))


def train(learner: VanillaPpo | AirLlm, envs: list[RankEnv] | list[RemoteEnv], episodes: int,
          episodes_per_update: int, eval_every: int = 1,
          say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run `episodes` episodes on parallel environments (len(envs) at a time; environments in actors step at the
    same time), updating every `episodes_per_update` rounds of them; one learning-curve row per update.

    Rows: update, episodes, env_steps (all environments), train_reward (mean per step since the last update),
    eval_reward (greedy, when evaluated), accuracy, airtime_s, the learner's losses, wall_s.
    A bar counts the episodes when the command line turned bars on.
    """
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    rewards, accs, airtimes = [], [], []
    rounds = max(1, -(-episodes // len(envs)))
    bar = progress(rounds * len(envs), f"{learner.kind} episodes", unit="episode")
    for rnd in range(1, rounds + 1):
        obs = np.stack([e.reset() for e in envs])
        done = False
        while not done:
            ranks, rec = learner.act(obs, explore=True)
            steps = [f.result() for f in [e.step_async(r) for e, r in zip(envs, ranks)]]  # actors step at once
            obs = np.stack([s[0] for s in steps])
            r = np.array([s[1] for s in steps])
            done = all(s[2] for s in steps)
            learner.record(rec, r, np.array([s[2] for s in steps]))
            rewards += list(r)
            accs += [s[3].accuracy for s in steps]
            airtimes += [s[3].airtime_s for s in steps]
        bar.update(len(envs))
        if rnd % episodes_per_update == 0 or rnd == rounds:
            stats = learner.update(obs)
            row = {"update": len(rows) + 1, "episodes": rnd * len(envs), "env_steps": sum(e.steps_taken for e in envs),
                   "train_reward": float(np.mean(rewards)), "accuracy": float(np.mean(accs)),
                   "airtime_s": float(np.mean(airtimes)), **stats}
            if eval_every and row["update"] % eval_every == 0:
                row["eval_reward"] = greedy_reward(learner, envs[0])
            row["wall_s"] = round(time.perf_counter() - t0, 2)
            rows.append(row)
            rewards, accs, airtimes = [], [], []
            bar.set_postfix(reward=f"{row['train_reward']:.3f}", refresh=False)
            if say:
                ev = f", greedy {row['eval_reward']:.3f}" if "eval_reward" in row else ""
                say(f"{learner.kind}: episode {row['episodes']}/{rounds * len(envs)} steps {row['env_steps']} reward "
                    f"{row['train_reward']:.3f}{ev} accuracy {row['accuracy']:.3f} airtime {row['airtime_s']:.2f} s")
    bar.close()
    return rows


def smoothed(values: list[float], window: int = 5) -> np.ndarray:
    """Trailing moving average."""
    v = np.asarray(values, float)
    return np.array([v[max(0, i - window + 1):i + 1].mean() for i in range(len(v))])


def steps_to_reach(curve: list[dict[str, Any]], target: float, key: str = "eval_reward", window: int = 5) -> int | None:
    """Environment steps after which the smoothed `key` first reaches `target` (None if never)."""
    pts = [(r["env_steps"], r[key]) for r in curve if key in r]
    if not pts:
        return None
    s = smoothed([v for _, v in pts], window)
    for (steps, _), value in zip(pts, s):
        if value >= target:
            return int(steps)
    return None


def final_reward(curve: list[dict[str, Any]], key: str = "eval_reward", share: float = 0.1) -> float:
    """Mean of `key` over the last `share` of the updates."""
    vals = [r[key] for r in curve if key in r]
    k = max(1, int(round(len(vals) * share)))
    return float(np.mean(vals[-k:]))
