"""Checkpoints of learned rank policies: one torch file with the networks, their hyperparameters and the problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from policy.problem import Problem
from testbed.errors import AirLoraError

if TYPE_CHECKING:
    from policy.airllm import AirLlm
    from policy.vanilla_ppo import VanillaPpo

FORMAT = 2


def seeded_path(path: str | Path, index: int) -> Path:
    """The checkpoint of the index-th training seed: `path` itself for the first, `<stem>-seed<index><suffix>` after."""
    path = Path(path)
    return path if index == 0 else path.with_name(f"{path.stem}-seed{index}{path.suffix}")


def as_dict(learner: VanillaPpo | AirLlm, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of a learner: its networks plus the problem's modules, shapes and normalization."""
    p = learner.problem
    return {"format": FORMAT, **learner.checkpoint(), "modules": p.modules,
            "shapes": {m: list(s) for m, s in p.shapes.items()}, "r_max": p.r_max,
            "snr_db_range": list(p.snr_db_range), **(extra or {})}


def save(learner: VanillaPpo | AirLlm | dict[str, Any], path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write a learner's checkpoint (or one `as_dict` made, e.g. on a worker) to `path` atomically."""
    ckpt = learner if isinstance(learner, dict) else as_dict(learner, extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path` as a dict (AirLoraError when missing or of another format)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AirLoraError(f"policy checkpoint {path} does not exist: train one with `airlora train-policy`")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("format") != FORMAT:
        raise AirLoraError(f"{path}: not a policy checkpoint of format {FORMAT}")
    return ckpt


def learner_from(ckpt: dict[str, Any], problem: Problem) -> VanillaPpo | AirLlm:
    """Rebuild the learner a checkpoint came from, on `problem`, with its trained weights."""
    from policy.airllm import AirLlm, AirLlmConfig
    from policy.ddim import DdimConfig
    from policy.ppo import PpoConfig
    from policy.vanilla_ppo import VanillaPpo

    if ckpt["kind"] == "airllm":
        learner = AirLlm(problem, PpoConfig(**ckpt["ppo_config"]), DdimConfig(**ckpt["ddim_config"]),
                         AirLlmConfig(**ckpt["airllm_config"]))
    elif ckpt["kind"] == "ppo":
        learner = VanillaPpo(problem, PpoConfig(**ckpt["ppo_config"]))
    else:
        raise AirLoraError(f"unknown policy kind {ckpt['kind']!r} in checkpoint")
    learner.load(ckpt)
    return learner
