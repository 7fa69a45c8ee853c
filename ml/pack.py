"""Pack a trained adapter into a payload as the receiver will see it: quantize, rebuild, record the probe logits, sign.

The sender decodes its own payload and rebuilds the peft folder exactly as the receiver will, loads it on a fresh
base model and records the logits of the probe texts: the receiver must reproduce those within the scheme's
tolerance, so the manifest carries what the receiver should see, not what the unquantized adapter gave. The host
packs what it broadcasts, an edge what it sends up (each signs with its own key).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters import signing
from adapters.payload import HEADER, HEADER_BYTES, decode, encode
from ml.adapter import Adapter
from ml.data import Splits
from testbed.config import TestbedConfig

PROBE_CHARS = 300  # probe texts are cut (sender and receiver both use the cut text) to keep the manifest small


def schemes(adapter: Adapter, quant: str) -> dict[str, str]:
    """The adapter's LoRA factors use `quant`; the small head travels fp32 (none) or fp16 (anything else)."""
    head = "none" if quant == "none" else "fp16"
    return {k: (head if ".lora_" not in k else quant) for k in adapter.tensors()}


def manifest(cfg: TestbedConfig, identity: dict, splits: Splits, adapter: Adapter, quant: str, probe_texts: list[str],
             logits_target, logits_fp32, method: str) -> dict[str, Any]:
    """The payload's manifest: model identity, peft spec, quantization, probe texts and logits, method."""
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


@dataclass
class Packed:
    """A packed payload and what packing measured."""

    payload: bytes
    payload_sha256: str
    signed_by: str | None
    probe_quant_err: float
    accuracy_after_quant: float | None
    """test accuracy of the rebuilt (dequantized) adapter, when asked for."""


def probe_texts(cfg: TestbedConfig, splits: Splits) -> list[str]:
    """The test texts whose logits travel in the manifest (cut to PROBE_CHARS)."""
    return [t[:PROBE_CHARS] for t, _ in splits.test[: cfg.data.probe_count]]


def pack_adapter(cfg: TestbedConfig, identity: dict, splits: Splits, adapter: Adapter, quant: str, method: str,
                 tokenizer, logits_fp32, double_quant: bool, signing_key: bytes | None = None,
                 measure_accuracy: bool = False) -> Packed:
    """Two passes: a draft payload is rebuilt as the receiver will and its probe logits go into the final one.
    logits_fp32 are the unquantized adapter's logits on probe_texts(cfg, splits); signing_key (raw Ed25519) signs."""
    from adapters.rebuild import rebuild
    from ml.evaluate import accuracy, load_adapted, logits

    texts = probe_texts(cfg, splits)
    tensors, kinds = adapter.tensors(), schemes(adapter, quant)
    draft = encode(manifest(cfg, identity, splits, adapter, quant, texts, logits_fp32, logits_fp32, method),
                   tensors, kinds, cfg.finetune.block_size, double_quant)
    acc = None
    with tempfile.TemporaryDirectory(prefix="airlora-pack-") as tmp:
        folder = rebuild(decode(draft), Path(tmp) / "adapter")
        rebuilt, _ = load_adapted(cfg.model, folder, splits.num_labels)
        target = logits(rebuilt, tokenizer, texts, cfg.model.max_length)
        if measure_accuracy:
            acc = accuracy(rebuilt, tokenizer, splits.test, cfg.model.max_length)
    payload = encode(manifest(cfg, identity, splits, adapter, quant, texts, target, logits_fp32, method),
                     tensors, kinds, cfg.finetune.block_size, double_quant)
    sha = payload[HEADER.size:HEADER_BYTES].hex()
    signed_by = None
    if signing_key is not None:
        payload = signing.sign(payload, signing_key)
        signed_by = signing.key_id(signing.public_key(signing_key))
    return Packed(payload, sha, signed_by, float(abs(target - logits_fp32).max()), acc)


def fp32_logits(cfg: TestbedConfig, identity: dict, splits: Splits, adapter: Adapter, tokenizer, texts: list[str]):
    """Logits on `texts` of the unquantized adapter (loaded from an fp32 peft folder, as the receiver loads one)."""
    from adapters.rebuild import write_peft_folder
    from ml.evaluate import load_adapted, logits

    spec = manifest(cfg, identity, splits, adapter, "none", texts, [], [], "fp32")["peft"]
    with tempfile.TemporaryDirectory(prefix="airlora-fp32-") as tmp:
        folder = write_peft_folder(spec, adapter.tensors(), Path(tmp) / "adapter", identity["name"])
        model, _ = load_adapted(cfg.model, folder, splits.num_labels)
        return logits(model, tokenizer, texts, cfg.model.max_length)
