"""`airlora train-policy` as a function: train learners on an environment, write checkpoints, curves, figures."""

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
from policy.ppo import PpoConfig
from policy.train import final_reward, steps_to_reach, train
from policy.vanilla_ppo import VanillaPpo
from testbed.results import RunFolder


def make_learner(algo: str, cfg, problem, seed: int):
    """A fresh learner with the config's hyperparameters."""
    p = cfg.policy
    if algo == "ppo":
        return VanillaPpo(problem, PpoConfig(hidden=p.hidden, lr=p.lr), seed=seed)
    ddim = DdimConfig(train_steps=p.ddim_train_steps, sample_steps=p.ddim_sample_steps, guidance=p.guidance,
                      cond_dropout=p.cond_dropout)
    return AirLlm(problem, PpoConfig(hidden=p.hidden, lr=p.lr, actor_out_gain=1.0), ddim,
                  AirLlmConfig(latent_dim=p.latent_dim, ddim_lr=p.ddim_lr), seed=seed)


def train_policies(cfg, env_kind: str, episodes: int, algos: list[str], seed: int, num_envs: int = 8,
                   checkpoint_path: str | None = None, say: Callable[[str], None] = print,
                   out_dir: str | None = None) -> dict[str, Any]:
    """Train each learner on its own copies of the environment (same seeds), save checkpoints and figures."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    if env_kind == "surrogate":
        torch.set_num_threads(1)  # small networks: one thread is faster than several fighting over tiny ops
    if env_kind == "real":
        num_envs = 1  # real fine-tunes run one at a time
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = RunFolder(out_dir or cfg.policy.out_dir, f"train-policy-{stamp}")
    folder.write_config(cfg.model_dump(mode="json"))
    ckpt_path = Path(checkpoint_path or cfg.policy.checkpoint)
    summary: dict[str, Any] = {"folder": str(folder.path), "env": env_kind, "episodes": episodes, "seed": seed,
                               "num_envs": num_envs, "learners": {}}
    curves = {}
    for algo in algos:
        envs = [make_env(cfg, env_kind, seed=seed * 1000 + i) for i in range(num_envs)]
        if env_kind == "surrogate" and "surrogate" not in summary:
            summary["surrogate"] = envs[0].report()
        learner = make_learner(algo, cfg, envs[0].problem, seed)
        say(f"training {algo} on the {env_kind} env: {episodes} episodes of {cfg.policy.episode_steps} steps, "
            f"{num_envs} environments in parallel")
        curve = train(learner, envs, episodes, 1, eval_every=1 if env_kind == "surrogate" else 0,
                      say=lambda s: say(s) if len(curves) < 10 else None)
        curves[algo] = curve
        path = ckpt_path if algo == "airllm" else ckpt_path.with_name("ppo.pt")
        checkpoint_extra = {"env": env_kind, "episodes": episodes, "seed": seed}
        checkpoint.save(learner, path, checkpoint_extra)
        folder.write_rows(f"curve_{algo}.csv", curve)
        key = "eval_reward" if "eval_reward" in curve[-1] else "train_reward"
        summary["learners"][algo] = {"final_reward": final_reward(curve, key), "env_steps": curve[-1]["env_steps"],
                                     "wall_s": curve[-1]["wall_s"], "checkpoint": str(path), "reward_key": key}
        folder.event("trained", algo=algo, **summary["learners"][algo])
    if {"airllm", "ppo"} <= set(curves):
        key = summary["learners"]["ppo"]["reward_key"]
        target = summary["learners"]["ppo"]["final_reward"]
        reach = steps_to_reach(curves["airllm"], target, key)
        ppo_reach = steps_to_reach(curves["ppo"], target, key)
        summary["steps_to_ppo_final"] = reach
        summary["ppo_steps_to_own_final"] = ppo_reach
        if reach is not None:
            summary["step_saving"] = round(1.0 - reach / summary["learners"]["ppo"]["env_steps"], 3)
        if reach is not None and ppo_reach:
            summary["step_saving_vs_ppo_first_reach"] = round(1.0 - reach / ppo_reach, 3)
        if key != "train_reward":  # the same comparison on the exploring (training) reward
            t = final_reward(curves["ppo"], "train_reward")
            summary["train_reward"] = {"ppo_final": t, "airllm_final": final_reward(curves["airllm"], "train_reward"),
                                       "airllm_steps_to_ppo_final": steps_to_reach(curves["airllm"], t, "train_reward"),
                                       "ppo_steps_to_own_final": steps_to_reach(curves["ppo"], t, "train_reward")}
    plots.learning_curves(curves, folder.path / "learning_curve.png")
    folder.write_json("summary.json", summary)
    folder.close()
    return summary
