"""Fine-tune a classifier with LoRA at one rank per projection, or with the AdaLoRA baseline (peft).

Both end as the same thing: per-module LoRA factors (A: r x in, B: out x r), the lora_alpha of each module
and the trained classification head, ready for the payload. AdaLoRA's pruned SVD triplets are folded into
plain LoRA factors (A' = E*A on the kept rows, B' = B * alpha / ranknum with lora_alpha' = r).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from peft import AdaLoraConfig, get_peft_model

from adapters import ranks as rk
from ml.data import Example
from ml.evaluate import encode
from ml.models import autocast_dtype
from testbed.sections.adapter import FinetuneConfig


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


@dataclass
class TrainResult:
    """The peft model after training, the adapter it carries, and training figures."""

    model: torch.nn.Module
    adapter: Adapter
    trainable_params: int
    train_s: float
    losses: list[float]


def _lr_lambda(steps: int):
    """Linear warmup over 10% of the steps, then linear decay towards 0."""
    warmup = max(1, steps // 10)
    return lambda s: max(0.0, min((s + 1) / warmup, (steps - s) / max(1, steps - warmup)))


def _train_loop(model, tokenizer, train: list[Example], cfg: FinetuneConfig, max_length: int, steps: int,
                after_step=None) -> tuple[list[float], float]:
    """AdamW with warmup and linear decay over shuffled batches (seeded); returns (losses, seconds)."""
    on = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps))
    rng = np.random.default_rng(cfg.seed)
    order, pos, losses = rng.permutation(len(train)), 0, []
    amp = autocast_dtype()
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        if pos + cfg.batch_size > len(order):
            order, pos = rng.permutation(len(train)), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        batch = encode(tokenizer, [train[i][0] for i in idx], max_length, on)
        labels = torch.tensor([train[i][1] for i in idx], device=on)
        with torch.autocast(on.type, dtype=amp, enabled=amp is not None):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if after_step is not None:
            after_step(step)
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses, time.perf_counter() - start


def _head_arrays(peft_model, head_names: list[str]) -> dict[str, np.ndarray]:
    """The trained copies of the head modules (modules_to_save), by '<module>.<param>'."""
    out = {}
    base = peft_model.base_model.model
    for h in head_names:
        wrapper = base.get_submodule(h)
        trained = wrapper.modules_to_save["default"] if hasattr(wrapper, "modules_to_save") else wrapper
        for pname, p in trained.named_parameters():
            out[f"{h}.{pname}"] = p.detach().float().cpu().numpy().copy()
    return out


def _trainable(model) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def train_lora(model, tokenizer, train: list[Example], ranks: dict[str, int], cfg: FinetuneConfig,
               head_names: list[str], max_length: int, steps: int | None = None) -> TrainResult:
    """LoRA with one rank per module (r = 0 modules are not adapted) and the head trained alongside."""
    alpha = rk.alphas(ranks, cfg.alpha_mode, cfg.alpha)
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, rk.lora_config(ranks, alpha, head_names, cfg.dropout))
    trainable = _trainable(peft_model)
    losses, seconds = _train_loop(peft_model, tokenizer, train, cfg, max_length, steps or cfg.steps)
    base = peft_model.base_model.model
    a, b = {}, {}
    for m, r in ranks.items():
        if r > 0:
            layer = base.get_submodule(m)
            a[m] = layer.lora_A["default"].weight.detach().float().cpu().numpy().copy()
            b[m] = layer.lora_B["default"].weight.detach().float().cpu().numpy().copy()
    adapter = Adapter({m: r for m, r in ranks.items() if r > 0}, alpha, a, b, _head_arrays(peft_model, head_names),
                      head_names, cfg.dropout, {"method": "lora"})
    return TrainResult(peft_model, adapter, trainable, seconds, losses)


def train_adalora(model, tokenizer, train: list[Example], modules: list[str], target_rank: int,
                  cfg: FinetuneConfig, head_names: list[str], max_length: int, steps: int | None = None) -> TrainResult:
    """The AdaLoRA baseline: peft's budget allocation (update_and_allocate every step), folded into LoRA factors."""
    steps = steps or cfg.steps
    init_r = max(target_rank + 1, (3 * target_rank + 1) // 2)
    tinit, tfinal = max(1, steps // 10), max(1, steps // 5)
    if tinit + tfinal >= steps:
        tinit, tfinal = 0, 0
    config = AdaLoraConfig(task_type="SEQ_CLS", target_modules=list(modules), init_r=init_r, target_r=target_rank,
                           lora_alpha=cfg.alpha * init_r, tinit=tinit, tfinal=tfinal, deltaT=1, total_step=steps,
                           modules_to_save=list(head_names), lora_dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, config)
    trainable = _trainable(peft_model)
    losses, seconds = _train_loop(peft_model, tokenizer, train, cfg, max_length, steps,
                                  after_step=lambda s: peft_model.base_model.update_and_allocate(s))
    base = peft_model.base_model.model
    ranks, alphas, a, b = {}, {}, {}, {}
    for m in modules:
        layer = base.get_submodule(m)
        e = layer.lora_E["default"].detach().float().cpu().reshape(-1)
        keep = torch.nonzero(e != 0).reshape(-1)
        r = int(keep.numel())
        if r == 0:
            continue
        factor = float(layer.scaling["default"]) / (float(layer.ranknum["default"]) + 1e-5)
        big_a = layer.lora_A["default"].detach().float().cpu()
        big_b = layer.lora_B["default"].detach().float().cpu()
        ranks[m], alphas[m] = r, float(r)  # lora_alpha = r: scaling 1, the factor is folded into B
        a[m] = (big_a[keep] * e[keep, None]).numpy().copy()
        b[m] = (big_b[:, keep] * factor).numpy().copy()
    adapter = Adapter(ranks, alphas, a, b, _head_arrays(peft_model, head_names), head_names, cfg.dropout,
                      {"method": "adalora", "init_r": init_r, "target_r": target_rank})
    return TrainResult(peft_model, adapter, trainable, seconds, losses)
