"""Payload -> a standard peft adapter folder (adapter_config.json + adapter_model.safetensors), torch-free."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from adapters.payload import Payload, PayloadError
from adapters.ranks import MAX_RANK, exact_key

MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+){0,31}$")
TASK_TYPES = ("SEQ_CLS",)


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise PayloadError(f"bad adapter description: {why}")


def peft_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `peft` section, checked: module names, ranks 1..MAX_RANK, finite alphas, head names."""
    spec = manifest.get("peft")
    _need(isinstance(spec, dict), "the manifest has no peft section")
    modules = spec.get("modules")
    _need(isinstance(modules, dict) and 0 < len(modules) <= 65536, "modules must be a non-empty mapping")
    for name, m in modules.items():
        _need(bool(MODULE_RE.match(name)), f"module name {name!r} is not allowed")
        _need(isinstance(m, dict) and isinstance(m.get("r"), int) and not isinstance(m.get("r"), bool)
              and 1 <= m["r"] <= MAX_RANK, f"{name}: rank must be an integer in 1..{MAX_RANK}")
        _need(isinstance(m.get("alpha"), (int, float)) and not isinstance(m.get("alpha"), bool)
              and math.isfinite(m["alpha"]) and 0 < m["alpha"] <= 1e6, f"{name}: alpha must be a positive number")
    heads = spec.get("modules_to_save", [])
    _need(isinstance(heads, list) and len(heads) <= 16 and all(isinstance(h, str) and MODULE_RE.match(h) for h in heads),
          "modules_to_save must be a short list of module names")
    _need(spec.get("task_type") in TASK_TYPES, f"task_type must be one of {TASK_TYPES}")
    dropout = spec.get("dropout", 0.0)
    _need(isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0, "dropout must be in [0, 1)")
    return {"modules": modules, "modules_to_save": heads, "task_type": spec["task_type"], "dropout": float(dropout)}


def check_tensors(spec: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """Exactly the tensors the spec implies, with LoRA shapes matching the ranks."""
    expected = set()
    for name, m in spec["modules"].items():
        a, b = f"base_model.model.{name}.lora_A.weight", f"base_model.model.{name}.lora_B.weight"
        expected |= {a, b}
        _need(a in tensors and b in tensors, f"{name}: LoRA factors missing")
        _need(tensors[a].ndim == 2 and tensors[a].shape[0] == m["r"], f"{name}: lora_A shape {tensors[a].shape} "
              f"does not have rank {m['r']}")
        _need(tensors[b].ndim == 2 and tensors[b].shape[1] == m["r"], f"{name}: lora_B shape {tensors[b].shape} "
              f"does not have rank {m['r']}")
    heads = tuple(f"base_model.model.{h}." for h in spec["modules_to_save"])
    extra = [k for k in tensors if k not in expected and not k.startswith(heads)]
    _need(not extra, f"unexpected tensors {extra[:3]}")


def adapter_config(spec: dict[str, Any], base_model: str) -> dict[str, Any]:
    """adapter_config.json for peft's LoraConfig, with one exact rank/alpha key per module."""
    modules = spec["modules"]
    names = sorted(modules)
    return {
        "peft_type": "LORA", "task_type": spec["task_type"], "base_model_name_or_path": base_model,
        "target_modules": names, "r": modules[names[0]]["r"], "lora_alpha": modules[names[0]]["alpha"],
        "rank_pattern": {exact_key(n): modules[n]["r"] for n in names},
        "alpha_pattern": {exact_key(n): modules[n]["alpha"] for n in names},
        "modules_to_save": spec["modules_to_save"], "lora_dropout": spec["dropout"], "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
    }


def write_peft_folder(spec: dict[str, Any], tensors: dict[str, np.ndarray], folder: Path, base_model: str) -> Path:
    """Write adapter_config.json and adapter_model.safetensors into `folder` (created)."""
    from safetensors.numpy import save_file  # numpy-only writer: no torch on this path

    check_tensors(spec, tensors)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config(spec, base_model), indent=2, sort_keys=True))
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()},
              str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return folder


def rebuild(payload: Payload, folder: Path) -> Path:
    """A verified payload -> a peft folder; also writes airlora_manifest.json (the manifest, for the record)."""
    spec = peft_spec(payload.manifest)
    write_peft_folder(spec, payload.tensors, folder, payload.manifest["model"]["name"])
    record = {k: v for k, v in payload.manifest.items() if k != "tensors"}
    record["payload_sha256"] = payload.sha256
    record["signed_by"] = payload.signed_by  # the edge's install keeps signed versions before unsigned ones
    (Path(folder) / "airlora_manifest.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    return Path(folder)
