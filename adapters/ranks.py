"""Rank vectors: which projections can be adapted, parsing rank specs, and rank vector <-> peft LoraConfig."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from testbed.errors import AirLoraError

# Projection kinds adapted by default, per model type (the last component of the module name).
AUTO_KINDS: dict[str, list[str]] = {
    "bert": ["query", "key", "value", "dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}
BLOCK_RE = re.compile(r"\.(layer|layers|h|block|blocks)\.\d+\.")
MAX_RANK = 4096


def target_kinds(model, kinds: list[str] | str = "auto") -> list[str]:
    """The projection kinds to adapt: the given list, or the model type's default."""
    if kinds != "auto":
        return list(kinds)
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    return AUTO_KINDS.get(model_type, [])


def adaptable_modules(model, kinds: list[str] | str = "auto") -> list[str]:
    """Full names of the Linear projections inside the transformer blocks whose last name part is a target kind.

    The pooler and the classification head sit outside the blocks and are not LoRA targets.
    """
    import torch

    wanted = set(target_kinds(model, kinds))
    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and BLOCK_RE.search(f".{name}.")
             and (not wanted or name.rsplit(".", 1)[-1] in wanted)]
    if not names:
        raise AirLoraError(f"no adaptable projections of kinds {sorted(wanted)} in {type(model).__name__}")
    return names


def parse_ranks(spec: str | dict[str, int], modules: list[str]) -> dict[str, int]:
    """A rank per module from `uniform:<r>`, a JSON file path, or a mapping {module: rank} (missing = 0)."""
    if isinstance(spec, str) and spec.startswith("uniform:"):
        try:
            r = int(spec.split(":", 1)[1])
        except ValueError:
            raise AirLoraError(f"rank spec {spec!r}: expected uniform:<integer>") from None
        mapping = {m: r for m in modules}
    elif isinstance(spec, str):
        try:
            mapping = json.loads(Path(spec).expanduser().read_text())
        except (OSError, ValueError) as exc:
            raise AirLoraError(f"ranks file {spec}: cannot read a JSON object ({exc})") from None
        if isinstance(mapping, list):
            if len(mapping) != len(modules):
                raise AirLoraError(f"ranks file {spec}: {len(mapping)} ranks for {len(modules)} modules")
            mapping = dict(zip(modules, mapping))
    else:
        mapping = dict(spec)
    if not isinstance(mapping, dict):
        raise AirLoraError("ranks must be a JSON object {module: rank} or a list in module order")
    unknown = sorted(set(mapping) - set(modules))
    if unknown:
        raise AirLoraError(f"ranks name modules the model does not have or cannot adapt: {unknown[:3]}")
    ranks = {}
    for m in modules:
        r = mapping.get(m, 0)
        if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= MAX_RANK:
            raise AirLoraError(f"rank of {m} must be an integer in 0..{MAX_RANK}, got {r!r}")
        ranks[m] = r
    if not any(ranks.values()):
        raise AirLoraError("every rank is 0: nothing to adapt")
    return ranks


ALPHA_MODES = ("fixed", "rslora", "standard", "rmax")


def alphas(ranks: dict[str, int], mode: str, alpha: float) -> dict[str, float]:
    """lora_alpha per adapted module, so that the LoRA scaling lora_alpha / r is, per mode:

    fixed: alpha (the same for every rank); rslora: alpha / sqrt(r) (rank-stabilized LoRA); standard: alpha / r
    (the original LoRA); rmax: alpha / r_max (AirLLM: one scaling for the whole rank vector).
    """
    active = {m: r for m, r in ranks.items() if r > 0}
    if mode == "fixed":
        return {m: alpha * r for m, r in active.items()}
    if mode == "rslora":
        return {m: alpha * math.sqrt(r) for m, r in active.items()}
    if mode == "standard":
        return {m: float(alpha) for m in active}
    if mode == "rmax":
        r_max = max(active.values())
        return {m: alpha * r / r_max for m, r in active.items()}
    raise AirLoraError(f"unknown alpha mode {mode!r}; known: {', '.join(ALPHA_MODES)}")


def exact_key(module: str) -> str:
    """A rank_pattern/alpha_pattern key that matches exactly this module (peft matches `(.*\\.)?(key)$`)."""
    return "^" + re.escape(module)


def lora_config(ranks: dict[str, int], alpha_by_module: dict[str, float], modules_to_save: list[str],
                dropout: float = 0.0, task_type: str = "SEQ_CLS"):
    """A peft LoraConfig with r=0 modules left out and one exact rank/alpha key per adapted module."""
    from peft import LoraConfig

    active = sorted(m for m, r in ranks.items() if r > 0)
    first = active[0]
    return LoraConfig(
        task_type=task_type, target_modules=active, r=ranks[first], lora_alpha=alpha_by_module[first],
        rank_pattern={exact_key(m): ranks[m] for m in active},
        alpha_pattern={exact_key(m): alpha_by_module[m] for m in active},
        lora_dropout=dropout, modules_to_save=list(modules_to_save), bias="none")


def lora_param_count(ranks: dict[str, int], shapes: dict[str, tuple[int, int]]) -> int:
    """LoRA parameters of a rank vector: r * (in + out) per module; shapes are (out, in)."""
    return sum(r * (shapes[m][0] + shapes[m][1]) for m, r in ranks.items() if r > 0)


def module_shapes(model, modules: list[str]) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each module (works on a meta-device model too)."""
    return {m: tuple(int(d) for d in model.get_submodule(m).weight.shape) for m in modules}
