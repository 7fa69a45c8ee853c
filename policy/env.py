"""The configured environment: `make_env` builds the surrogate or the real one from testbed.yaml.

The environments: policy/rank_env.py (episodes on a drifting channel), policy/surrogate.py (fitted on real
fine-tunes, fast), policy/real_env.py (each step a real fine-tune).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy.problem import problem_from_config
from policy.rank_env import RankEnv
from policy.real_env import RealEnv
from policy.surrogate import SurrogateEnv, load_surrogate_data

if TYPE_CHECKING:
    from testbed.config import TestbedConfig


def make_env(cfg: TestbedConfig, kind: str | None = None, seed: int = 0) -> RankEnv:
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
