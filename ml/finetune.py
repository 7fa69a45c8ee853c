"""Fine-tune a classifier with LoRA at one rank per projection, or with the AdaLoRA baseline (peft).

Both end as the same thing: per-module LoRA factors (A: r x in, B: out x r), the lora_alpha of each module
and the trained classification head, ready for the payload. AdaLoRA's pruned SVD triplets are folded into
plain LoRA factors (A' = E*A on the kept rows, B' = B * alpha / ranknum with lora_alpha' = r).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from peft import AdaLoraConfig, get_peft_model

from adapters import ranks as rk
from ml.adapter import Adapter
from ml.data import Example
from ml.evaluate import encode
from ml.models import autocast_dtype
from testbed.sections.adapter import FinetuneConfig


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
    """AdamW with warmup and linear decay over shuffled batches (seeded); returns (losses, seconds).
    Draws a bar over the steps, with the running loss, when the command line turned bars on."""
    from testbed.progress import progress

    on = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps))
    rng = np.random.default_rng(cfg.seed)
    order, pos, losses = rng.permutation(len(train)), 0, []
    amp = autocast_dtype()
    model.train()
    start = time.perf_counter()
    bar = progress(steps, "fine-tuning", unit="step")
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
        bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}", refresh=False)
        bar.update()
    bar.close()
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


def _start_from(peft_model, init: Adapter, ranks: dict[str, int], alpha: dict[str, float]) -> None:
    """Set the LoRA factors and the head's trained copy to `init`'s (which has these ranks and alphas)."""
    base = peft_model.base_model.model
    for m, r in ranks.items():
        if r > 0:
            if init.ranks.get(m) != r or abs(init.alphas[m] - alpha[m]) > 1e-6 * alpha[m]:
                raise ValueError(f"the initial adapter of {m} has rank {init.ranks.get(m)}, alpha "
                                 f"{init.alphas.get(m)}; training needs rank {r}, alpha {alpha[m]}")
            layer = base.get_submodule(m)
            with torch.no_grad():
                layer.lora_A["default"].weight.copy_(torch.from_numpy(init.lora_a[m]))
                layer.lora_B["default"].weight.copy_(torch.from_numpy(init.lora_b[m]))
    for name, value in init.head.items():
        module, _, pname = name.rpartition(".")
        wrapper = base.get_submodule(module)
        trained = wrapper.modules_to_save["default"] if hasattr(wrapper, "modules_to_save") else wrapper
        with torch.no_grad():
            getattr(trained, pname).copy_(torch.from_numpy(value))


def train_lora(model, tokenizer, train: list[Example], ranks: dict[str, int], cfg: FinetuneConfig,
               head_names: list[str], max_length: int, steps: int | None = None,
               init: Adapter | None = None) -> TrainResult:
    """LoRA with one rank per module (r = 0 modules are not adapted) and the head trained alongside; `init`
    (with these ranks and the alphas alpha_mode gives them) sets the starting factors and head instead of LoRA's."""
    alpha = rk.alphas(ranks, cfg.alpha_mode, cfg.alpha)
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, rk.lora_config(ranks, alpha, head_names, cfg.dropout))
    if init is not None:
        _start_from(peft_model, init, ranks, alpha)
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


@dataclass(frozen=True)
class AdaLoraSchedule:
    """AdaLoRA's budget schedule and regularisation, sized for short runs (a few hundred steps).

    The AdaLoRA paper trains thousands of steps with orth_reg_weight 0.1 and P, Q drawn N(0, 0.02): the
    orthogonality penalty then pulls P and Q to orthonormal over the first few hundred steps. In a 125-step run
    that pull dominates and the model collapses to one class (measured on MiniLM-L6 / Rotten Tomatoes, target
    rank 4: 0.575 at weight 0.5, peft's default, and at 0.1). Here P and Q start orthonormal (what the penalty
    would reach) and the penalty is off; E starts at 0, so the adapter grows more slowly than LoRA's B: a larger
    scaling and learning rate make up for it (scaling 2 / lr 2e-3: 0.736; scaling 5: 0.747; scaling 5 and
    lr 4e-3: 0.760, one seed each; over 3 seeds 0.758 against uniform LoRA rank 4's 0.766 at the default
    rslora 5.657 / lr 1e-3: `airlora bench finetune`).
    """

    init_rank_factor: float = 1.5  # init_r = max(target + 1, ceil(1.5 x target)): a third of the triplets is pruned
    tinit_share: float = 0.1  # steps at the full budget before pruning starts
    tfinal_share: float = 0.2  # steps at the final budget after pruning ends
    delta_t: int = 1  # steps between budget re-allocations
    orth_reg_weight: float = 0.0  # weight of ||PP^T - I|| + ||Q^TQ - I|| in the loss
    orthonormal_init: bool = True  # P rows and Q columns start orthonormal (E starts at 0: the adapter is a no-op)
    scaling: float = 5.0  # the adapter's output scale: lora_alpha / init_r (lora_alpha = scaling x init_r)
    lr_scale: float = 4.0  # AdaLoRA's learning rate is finetune.lr times this (4e-3 at the default 1e-3)


def _orthonormal_factors(peft_model, adapter: str = "default") -> None:
    """AdaLoRA's P (lora_A, rows) and Q (lora_B, columns) of every adapted module set to random orthonormal
    vectors, drawn from the global generator (seeded by the caller)."""
    for module in peft_model.modules():
        if hasattr(module, "lora_E") and adapter in module.lora_E:
            with torch.no_grad():
                torch.nn.init.orthogonal_(module.lora_A[adapter])
                torch.nn.init.orthogonal_(module.lora_B[adapter])


def train_adalora(model, tokenizer, train: list[Example], modules: list[str], target_rank: int,
                  cfg: FinetuneConfig, head_names: list[str], max_length: int, steps: int | None = None,
                  schedule: AdaLoraSchedule = AdaLoraSchedule()) -> TrainResult:
    """The AdaLoRA baseline: peft's budget allocation (update_and_allocate every step), folded into LoRA factors."""
    steps = steps or cfg.steps
    init_r = max(target_rank + 1, math.ceil(schedule.init_rank_factor * target_rank))
    tinit, tfinal = max(1, int(steps * schedule.tinit_share)), max(1, int(steps * schedule.tfinal_share))
    if tinit + tfinal >= steps:
        tinit, tfinal = 0, 0
    config = AdaLoraConfig(task_type="SEQ_CLS", target_modules=list(modules), init_r=init_r, target_r=target_rank,
                           lora_alpha=schedule.scaling * init_r, tinit=tinit, tfinal=tfinal, deltaT=schedule.delta_t,
                           total_step=steps, orth_reg_weight=schedule.orth_reg_weight,
                           modules_to_save=list(head_names), lora_dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, config)
    if schedule.orthonormal_init:
        _orthonormal_factors(peft_model)
    trainable = _trainable(peft_model)
    adalora_cfg = cfg.model_copy(update={"lr": cfg.lr * schedule.lr_scale})
    losses, seconds = _train_loop(peft_model, tokenizer, train, adalora_cfg, max_length, steps,
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
                      {"method": "adalora", "init_r": init_r, "target_r": target_rank, "schedule": asdict(schedule)})
    return TrainResult(peft_model, adapter, trainable, seconds, losses)
