"""One host round: fine-tune with a rank vector (or AdaLoRA), quantize, pack, and self-check the payload.

The host decodes its own payload and rebuilds the peft folder exactly as the edge will, loads it on a fresh
base model and records the logits of the probe texts: the edge must reproduce those within the scheme's
tolerance, so the manifest carries what the edge should see, not what the unquantized adapter gave. With a
signing key the payload goes out signed (adapters.signing), as an edge that checks signatures requires.
"""

from __future__ import annotations

import time
from typing import Any

from adapters import ranks as rk
from ml.data import Splits, load_task
from ml.features import batch_features, vocabulary
from ml.pack import pack_adapter, probe_texts
from adapters.identity import model_identity
from testbed.config import TestbedConfig

FP32_BYTES = 4


def finetune_and_pack(cfg: TestbedConfig, ranks: str | dict[str, int] | None = None, quant: str | None = None,
                      steps: int | None = None, adalora_target_rank: int | None = None,
                      splits: Splits | None = None, accuracy_before: float | None = None,
                      double_quant: bool | None = None,
                      signing_key: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
    """(payload bytes, report): fine-tune (LoRA at `ranks`, or AdaLoRA when adalora_target_rank is given),
    quantize with `quant`, pack, and check the payload by rebuilding it as the edge will. double_quant (default:
    finetune.double_quant) False packs payload format 1 (fp32 block scales, plain manifest), as earlier figures.
    signing_key (a raw Ed25519 secret key, testbed.keys.host_signing_secret) signs the payload; None leaves it
    unsigned (what only an edge with edge.allow_unsigned installs)."""
    from ml import finetune as ft
    from ml.evaluate import accuracy, logits
    from ml.models import head_module_names, load_classifier

    quant = quant or cfg.finetune.quant
    double_quant = cfg.finetune.double_quant if double_quant is None else double_quant
    splits = splits or load_task(cfg.data)
    max_len = cfg.model.max_length
    identity = model_identity(cfg.model.name, cfg.model.cache_dir)
    model, tokenizer = load_classifier(cfg.model, splits.num_labels)
    t0 = time.perf_counter()
    # the base model's accuracy is the same every round: a caller that measured it may pass it in
    acc_before = accuracy(model, tokenizer, splits.test, max_len) if accuracy_before is None else accuracy_before
    eval_s = time.perf_counter() - t0
    modules = rk.adaptable_modules(model, cfg.finetune.target_modules)
    heads = head_module_names(model)
    if adalora_target_rank:
        method = f"adalora:{adalora_target_rank}"
        result = ft.train_adalora(model, tokenizer, splits.train, modules, adalora_target_rank, cfg.finetune, heads,
                                  max_len, steps)
    else:
        spec = ranks if ranks is not None else cfg.finetune.ranks
        method = spec if isinstance(spec, str) and spec.startswith("uniform:") else "ranks"
        result = ft.train_lora(model, tokenizer, splits.train, rk.parse_ranks(spec, modules), cfg.finetune, heads,
                               max_len, steps)
    acc_after = accuracy(result.model, tokenizer, splits.test, max_len)
    texts = probe_texts(cfg, splits)
    logits_fp32 = logits(result.model, tokenizer, texts, max_len)
    adapter, tensors = result.adapter, result.adapter.tensors()
    packed = pack_adapter(cfg, identity, splits, adapter, quant, method, tokenizer, logits_fp32, double_quant,
                          signing_key, measure_accuracy=True)
    payload, payload_sha256, signed_by = packed.payload, packed.payload_sha256, packed.signed_by
    acc_quant = packed.accuracy_after_quant
    fp32_bytes = FP32_BYTES * sum(int(v.size) for v in tensors.values())
    report = {
        "method": method, "model": identity["name"], "model_sha256": identity["sha256"], "task": cfg.data.task,
        "accuracy_before": acc_before, "accuracy_after": acc_after, "accuracy_after_quant": acc_quant,
        "trainable_params": result.trainable_params, "adapter_params": sum(int(v.size) for v in tensors.values()),
        "ranks": {m: adapter.ranks.get(m, 0) for m in modules}, "quant": quant, "block_size": cfg.finetune.block_size,
        "double_quant": double_quant,
        "payload_bytes": len(payload), "fp32_bytes": fp32_bytes, "compression": fp32_bytes / len(payload),
        "probe_quant_err": packed.probe_quant_err, "train_s": result.train_s, "eval_s": eval_s,
        "steps": len(result.losses), "final_loss": result.losses[-1] if result.losses else None,
        "features": batch_features([t for t, _ in splits.test], vocabulary(t for t, _ in splits.train)),
        "payload_sha256": payload_sha256, "signed_by": signed_by,
    }
    return payload, report
