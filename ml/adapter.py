"""A trained LoRA adapter as plain numpy arrays (torch-free): what fine-tuning produces and aggregation combines."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Adapter:
    """A trained adapter as plain arrays: per-module LoRA factors and alphas, and the head's parameters."""

    ranks: dict[str, int]
    alphas: dict[str, float]
    lora_a: dict[str, np.ndarray]
    lora_b: dict[str, np.ndarray]
    head: dict[str, np.ndarray]  # "<head module>.<param>" -> array
    modules_to_save: list[str]
    dropout: float = 0.0
    info: dict = field(default_factory=dict)

    def tensors(self) -> dict[str, np.ndarray]:
        """The tensors under the names a peft adapter_model.safetensors uses."""
        out = {}
        for m, r in self.ranks.items():
            if r > 0:
                out[f"base_model.model.{m}.lora_A.weight"] = self.lora_a[m]
                out[f"base_model.model.{m}.lora_B.weight"] = self.lora_b[m]
        out.update({f"base_model.model.{k}": v for k, v in self.head.items()})
        return out

    def scaling(self, module: str) -> float:
        """peft's LoRA scaling of one module: lora_alpha / r."""
        return float(self.alphas[module]) / int(self.ranks[module])

    def delta(self, module: str) -> np.ndarray:
        """The module's weight update scaling x B A (out x in, float64)."""
        return self.scaling(module) * (self.lora_b[module].astype(np.float64) @ self.lora_a[module].astype(np.float64))


PREFIX = "base_model.model."


def from_tensors(modules: dict[str, dict], tensors: dict[str, np.ndarray], modules_to_save: list[str],
                 dropout: float = 0.0) -> Adapter:
    """An Adapter from a payload's peft spec ({module: {r, alpha}}) and its tensors by peft name."""
    ranks = {m: int(s["r"]) for m, s in modules.items() if int(s["r"]) > 0}
    alphas = {m: float(modules[m]["alpha"]) for m in ranks}
    a = {m: np.asarray(tensors[f"{PREFIX}{m}.lora_A.weight"], np.float32) for m in ranks}
    b = {m: np.asarray(tensors[f"{PREFIX}{m}.lora_B.weight"], np.float32) for m in ranks}
    lora = {f"{PREFIX}{m}.lora_{x}.weight" for m in ranks for x in "AB"}
    head = {k[len(PREFIX):]: np.asarray(v, np.float32) for k, v in tensors.items()
            if k not in lora and k.startswith(PREFIX)}
    return Adapter(ranks, alphas, a, b, head, list(modules_to_save), dropout)
