"""One host round: fine-tune with a rank vector (or AdaLoRA), quantize, pack, and self-check the payload.

The host decodes its own payload and rebuilds the peft folder exactly as the edge will, loads it on a fresh
base model and records the logits of the probe texts: the edge must reproduce those within the scheme's
tolerance, so the manifest carries what the edge should see, not what the unquantized adapter gave. With a
signing key the payload goes out signed (adapters.signing), as an edge that checks signatures requires.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from adapters import ranks as rk
from adapters import signing
from ml.data import Splits, load_task
from ml.features import batch_features, vocabulary
from adapters.identity import model_identity
from adapters.payload import HEADER, HEADER_BYTES, decode, encode
from testbed.config import TestbedConfig

FP32_BYTES = 4
PROBE_CHARS = 300  # probe texts are cut (host and edge both use the cut text) to keep the manifest small


def _schemes(adapter, quant: str) -> dict[str, str]:
    """The adapter's LoRA factors use `quant`; the small head travels fp32 (none) or fp16 (anything else)."""
    head = "none" if quant == "none" else "fp16"
    return {k: (head if ".lora_" not in k else quant) for k in adapter.tensors()}


def _manifest(cfg: TestbedConfig, identity: dict, splits: Splits, adapter, quant: str, probe_texts: list[str],
              logits_target, logits_fp32, method: str) -> dict[str, Any]:
    return {
        "model": {**identity, "num_labels": splits.num_labels, "max_length": cfg.model.max_length,
                  "task": cfg.data.task, "head_seed": cfg.model.head_seed},
        "peft": {"task_type": "SEQ_CLS", "dropout": adapter.dropout, "modules_to_save": adapter.modules_to_save,
                 "modules": {m: {"r": r, "alpha": adapter.alphas[m]} for m, r in adapter.ranks.items()}},
        "quant": {"scheme": quant, "block_size": cfg.finetune.block_size},
        "probe": {"texts": probe_texts, "logits": [[float(v) for v in row] for row in logits_target],
                  "logits_fp32": [[float(v) for v in row] for row in logits_fp32]},
        "method": method,
    }


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
    from adapters.rebuild import rebuild
    from ml import finetune as ft
    from ml.evaluate import accuracy, load_adapted, logits
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
    probe_texts = [t[:PROBE_CHARS] for t, _ in splits.test[: cfg.data.probe_count]]
    logits_fp32 = logits(result.model, tokenizer, probe_texts, max_len)
    adapter, tensors = result.adapter, result.adapter.tensors()
    schemes = _schemes(adapter, quant)
    # Pass 1: the payload without trustworthy probe logits, to rebuild what the edge will get.
    draft = encode(_manifest(cfg, identity, splits, adapter, quant, probe_texts, logits_fp32, logits_fp32, method),
                   tensors, schemes, cfg.finetune.block_size, double_quant)
    with tempfile.TemporaryDirectory(prefix="airlora-host-") as tmp:
        folder = rebuild(decode(draft), Path(tmp) / "adapter")
        edge_model, _ = load_adapted(cfg.model, folder, splits.num_labels)
        target = logits(edge_model, tokenizer, probe_texts, max_len)
        acc_quant = accuracy(edge_model, tokenizer, splits.test, max_len)
    payload = encode(_manifest(cfg, identity, splits, adapter, quant, probe_texts, target, logits_fp32, method),
                     tensors, schemes, cfg.finetune.block_size, double_quant)
    payload_sha256 = payload[HEADER.size:HEADER_BYTES].hex()
    signed_by = None
    if signing_key is not None:
        payload = signing.sign(payload, signing_key)
        signed_by = signing.key_id(signing.public_key(signing_key))
    fp32_bytes = FP32_BYTES * sum(int(v.size) for v in tensors.values())
    report = {
        "method": method, "model": identity["name"], "model_sha256": identity["sha256"], "task": cfg.data.task,
        "accuracy_before": acc_before, "accuracy_after": acc_after, "accuracy_after_quant": acc_quant,
        "trainable_params": result.trainable_params, "adapter_params": sum(int(v.size) for v in tensors.values()),
        "ranks": {m: adapter.ranks.get(m, 0) for m in modules}, "quant": quant, "block_size": cfg.finetune.block_size,
        "double_quant": double_quant,
        "payload_bytes": len(payload), "fp32_bytes": fp32_bytes, "compression": fp32_bytes / len(payload),
        "probe_quant_err": float(abs(target - logits_fp32).max()), "train_s": result.train_s, "eval_s": eval_s,
        "steps": len(result.losses), "final_loss": result.losses[-1] if result.losses else None,
        "features": batch_features([t for t, _ in splits.test], vocabulary(t for t, _ in splits.train)),
        "payload_sha256": payload_sha256, "signed_by": signed_by,
    }
    return payload, report
