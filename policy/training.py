"""`airlora train-policy` as a function: train learners on an environment over seeds, write checkpoints, curves,
figures and the comparison of the hierarchical policy with vanilla PPO (per seed and averaged)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policy import checkpoint, plots
from policy.airllm import AirLlm, AirLlmConfig
from policy.ddim import DdimConfig
from policy.env import make_env
from policy.executor import Executor, InlineExecutor, Resources, map_jobs, one_line
from policy.ppo import PpoConfig
from policy.problem import Problem
from policy.surrogate import cross_validate
from policy.train import final_reward, steps_to_reach, train
from policy.vanilla_ppo import VanillaPpo
from testbed.config import TestbedConfig
from testbed.results import RunFolder


def make_learner(algo: str, cfg: TestbedConfig, problem: Problem, seed: int) -> VanillaPpo | AirLlm:
    """A fresh learner with the config's hyperparameters."""
    p = cfg.policy
    if algo == "ppo":
        return VanillaPpo(problem, PpoConfig(hidden=p.hidden, lr=p.lr), seed=seed)
    ddim = DdimConfig(train_steps=p.ddim_train_steps, sample_steps=p.ddim_sample_steps, guidance=p.guidance,
                      cond_dropout=p.cond_dropout)
    return AirLlm(problem, PpoConfig(hidden=p.hidden, lr=p.lr, actor_out_gain=1.0), ddim,
                  AirLlmConfig(latent_dim=p.latent_dim, ddim_lr=p.ddim_lr, candidates=p.candidates), seed=seed)


def compare(airllm: list[dict[str, Any]], ppo: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Environment steps the hierarchical policy needs to reach vanilla PPO's final reward, and the saving."""
    target = final_reward(ppo, key)
    reach, ppo_reach = steps_to_reach(airllm, target, key), steps_to_reach(ppo, target, key)
    out: dict[str, Any] = {"ppo_final": target, "airllm_final": final_reward(airllm, key), "airllm_steps": reach,
                           "ppo_steps": ppo[-1]["env_steps"], "ppo_first_reach": ppo_reach}
    out["step_saving"] = None if reach is None else round(1.0 - reach / ppo[-1]["env_steps"], 3)
    out["step_saving_vs_ppo_first_reach"] = (round(1.0 - reach / ppo_reach, 3)
                                             if reach is not None and ppo_reach else None)
    return out


def _mean_std(values: list[float | None]) -> dict[str, Any]:
    v = [x for x in values if x is not None]
    return {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v)) if v else None,
            "values": values}


def train_policies(cfg: TestbedConfig, env_kind: str, episodes: int, algos: list[str], seed: int,
                   num_envs: int | None = None, checkpoint_path: str | None = None, say: Callable[[str], None] = print,
                   out_dir: str | None = None, seeds: int = 1, ppo_episodes: int | None = None,
                   executor: Executor | None = None, resources: Resources = Resources()) -> dict[str, Any]:
    """Train each learner on its own copies of the environment (same seeds as the other learners), once per seed;
    the k-th seed's checkpoints go to checkpoint.seeded_path(path, k). Summary: per learner the final greedy
    reward per seed and averaged; the hierarchical policy's step saving against vanilla PPO per seed and averaged.
    `ppo_episodes` gives vanilla PPO its own budget (e.g. long enough to converge, for the step comparison).
    `executor` (default: this process) runs the work: on the surrogate, each (learner, seed) pair is a job; on the
    real environment the `num_envs` environments (default 1; 8 on the surrogate) are its actors (each keeps its
    base model loaded and steps while the others do, asking for `resources`) and the pairs train one after
    another here. The results do not depend
    on the executor: every pair and environment is seeded on its own."""
    executor = executor or InlineExecutor()
    num_envs = num_envs or (1 if env_kind == "real" else 8)  # a real step is a fine-tune: one env unless asked
    if env_kind == "surrogate":
        torch.set_num_threads(1)  # small networks: one thread is faster than several fighting over tiny ops
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = RunFolder(out_dir or cfg.policy.out_dir, f"train-policy-{stamp}")
    folder.write_config(cfg.model_dump(mode="json"))
    ckpt_path = Path(checkpoint_path or cfg.policy.checkpoint)
    budget = {a: (ppo_episodes or episodes) if a == "ppo" else episodes for a in algos}
    summary: dict[str, Any] = {"folder": str(folder.path), "env": env_kind, "episodes": budget, "seed": seed,
                               "seeds": seeds, "num_envs": num_envs, "learners": {}}
    if env_kind == "surrogate":
        probe = make_env(cfg, env_kind, seed=seed * 1000)
        summary["surrogate"] = {**probe.report(), "cv": cross_validate(probe.problem, probe.data_file, folds=5)}
    jobs = [(algo, seed + k, k) for k in range(seeds) for algo in algos]
    if env_kind == "real":
        from policy.remote_env import real_env_actors

        envs = real_env_actors(executor, cfg, num_envs, resources)
        say(f"{num_envs} real environment(s) on {executor.describe()}")
        results = [_train_one(cfg, env_kind, a, budget[a], s, k, num_envs, ckpt_path, say, envs) for a, s, k in jobs]
    else:
        results = _run_jobs(cfg, env_kind, budget, num_envs, ckpt_path, jobs, executor, resources, say)
    curves: dict[str, list[list[dict[str, Any]]]] = {a: [] for a in algos}
    for (algo, s, _k), (curve, path) in zip(jobs, results):
        curves[algo].append(curve)
        folder.write_rows(f"curve_{algo}_seed{s}.csv", curve)
        key = "eval_reward" if "eval_reward" in curve[-1] else "train_reward"
        entry = summary["learners"].setdefault(algo, {"reward_key": key, "per_seed": []})
        entry["per_seed"].append({"seed": s, "final_reward": final_reward(curve, key),
                                  "env_steps": curve[-1]["env_steps"], "wall_s": curve[-1]["wall_s"],
                                  "checkpoint": path})
        folder.event("trained", algo=algo, **entry["per_seed"][-1])
    for entry in summary["learners"].values():
        entry["final_reward"] = _mean_std([e["final_reward"] for e in entry["per_seed"]])
        entry["env_steps"] = entry["per_seed"][0]["env_steps"]
        entry["checkpoint"] = entry["per_seed"][0]["checkpoint"]
    if {"airllm", "ppo"} <= set(curves):
        key = summary["learners"]["ppo"]["reward_key"]
        per_seed = [compare(a, p, key) | {"seed": seed + k} for k, (a, p) in enumerate(zip(curves["airllm"],
                                                                                            curves["ppo"]))]
        summary["vs_ppo"] = {"reward_key": key, "per_seed": per_seed,
                             **{f: _mean_std([c[f] for c in per_seed])
                                for f in ("ppo_final", "airllm_final", "airllm_steps", "step_saving")}}
    plots.learning_curves(curves, folder.path / "learning_curve.png")
    folder.write_json("summary.json", summary)
    folder.close()
    return summary


def _train_one(cfg: TestbedConfig, env_kind: str, algo: str, episodes: int, s: int, k: int, num_envs: int,
               ckpt_path: Path, say: Callable[[str], None] | None,
               envs: list[Any] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Train one learner with seed s (the k-th seed) and save its checkpoint; (learning curve, checkpoint path)."""
    curve, ckpt = _fit(cfg, env_kind, algo, episodes, s, num_envs, say, envs)
    return curve, str(_save(ckpt, algo, ckpt_path, k))


def _save(ckpt: dict[str, Any], algo: str, ckpt_path: Path, k: int) -> Path:
    """The k-th seed's checkpoint of `algo` (vanilla PPO's beside airllm's, as ppo.pt)."""
    base = ckpt_path if algo == "airllm" else ckpt_path.with_name("ppo.pt")
    return checkpoint.save(ckpt, checkpoint.seeded_path(base, k))


def _fit(cfg: TestbedConfig, env_kind: str, algo: str, episodes: int, s: int, num_envs: int,
         say: Callable[[str], None] | None, envs: list[Any] | None = None) -> tuple[list[dict[str, Any]], dict]:
    """Train one learner with seed s; (learning curve, checkpoint dict). `envs` (e.g. actors) are reseeded as
    fresh environments would be seeded; without them they are built here."""
    torch.manual_seed(s)
    np.random.seed(s)
    if envs is None:
        envs = [make_env(cfg, env_kind, seed=s * 1000 + i) for i in range(num_envs)]
    else:
        for i, env in enumerate(envs):
            env.reseed(s * 1000 + i)
    learner = make_learner(algo, cfg, envs[0].problem, s)
    if say:
        say(f"training {algo} (seed {s}) on the {env_kind} env: {episodes} episodes of "
            f"{cfg.policy.episode_steps} steps, {len(envs)} environments in parallel")
    curve = train(learner, envs, episodes, 1, eval_every=1 if env_kind == "surrogate" else 0, say=say or print)
    return curve, checkpoint.as_dict(learner, {"env": env_kind, "episodes": episodes, "seed": s})


def _worker_job(cfg: TestbedConfig, env_kind: str, algo: str, episodes: int, s: int,
                num_envs: int) -> tuple[list[dict[str, Any]], dict]:
    """`_fit` as a job, printing nothing, on one torch thread on the surrogate (small networks: more threads only
    fight over tiny ops); the checkpoint comes back to be written where the command runs."""
    if env_kind == "surrogate":
        torch.set_num_threads(1)
    return _fit(cfg, env_kind, algo, episodes, s, num_envs, lambda _s: None)


def _run_jobs(cfg: TestbedConfig, env_kind: str, budget: dict[str, int], num_envs: int, ckpt_path: Path,
              jobs: list[tuple[str, int, int]], executor: Executor, resources: Resources,
              say: Callable[[str], None]) -> list[tuple[list[dict[str, Any]], str]]:
    """Every (learner, seed, index) job in order: here (with progress lines) or as jobs of `executor`."""
    if isinstance(executor, InlineExecutor) or len(jobs) == 1:
        return [_train_one(cfg, env_kind, a, budget[a], s, k, num_envs, ckpt_path, say) for a, s, k in jobs]
    say(f"training {len(jobs)} (learner, seed) pairs on {executor.describe()}")
    args = [(cfg, env_kind, a, budget[a], s, num_envs) for a, s, _k in jobs]
    out: dict[int, tuple[list[dict[str, Any]], str]] = {}

    def failed(i: int, exc: BaseException, attempt: int) -> None:
        say(f"training {jobs[i][0]} (seed {jobs[i][1]}) failed (attempt {attempt}): {one_line(exc)}; retrying")

    for i, (curve, ckpt) in map_jobs(executor, _worker_job, args, resources, on_failure=failed):
        out[i] = curve, str(_save(ckpt, jobs[i][0], ckpt_path, jobs[i][2]))
        say(f"trained {jobs[i][0]} (seed {jobs[i][1]})")
    return [out[i] for i in range(len(jobs))]
