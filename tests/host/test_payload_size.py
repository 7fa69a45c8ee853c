"""Payload size of a MiniLM-L6 adapter from shapes alone (no training): exact body bytes and >= 7x over fp32."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from adapters import payload as pl
from host.pipeline import FP32_BYTES
from ml.pack import PROBE_CHARS
from ml.pack import manifest as _manifest
from policy.cost import lora_payload_bytes
from testbed.config import load

SHAPES = {m: tuple(s) for m, s in json.loads(
    (Path(__file__).parents[2] / "policy/data/minilm_rt_finetunes.json").read_text())["shapes"].items()}
NUM_LABELS = 2


def _adapter(rank: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], types.SimpleNamespace]:
    """Random LoRA factors of MiniLM's 36 default projections at a uniform rank, plus a 2-label head."""
    t = {}
    for m, (out_f, in_f) in SHAPES.items():
        t[f"base_model.model.{m}.lora_A.weight"] = (rng.uniform(-1, 1, (rank, in_f)) / np.sqrt(in_f)).astype(np.float32)
        t[f"base_model.model.{m}.lora_B.weight"] = (rng.standard_normal((out_f, rank)) * 0.01).astype(np.float32)
    t["base_model.model.classifier.weight"] = (rng.standard_normal((NUM_LABELS, 384)) * 0.02).astype(np.float32)
    t["base_model.model.classifier.bias"] = np.zeros(NUM_LABELS, np.float32)
    adapter = types.SimpleNamespace(dropout=0.0, modules_to_save=["classifier"], ranks={m: rank for m in SHAPES},
                                    alphas={m: 2.0 * rank for m in SHAPES})
    return t, adapter


def _payload(rank: int, quant: str, double_quant: bool = True) -> tuple[bytes, dict[str, np.ndarray]]:
    """What finetune_and_pack would send, with the real manifest builder and pessimistic (incompressible-ish)
    probe texts of the full PROBE_CHARS length."""
    rng = np.random.default_rng(rank)
    cfg = load()
    tensors, adapter = _adapter(rank, rng)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz      ,.'"))
    texts = ["".join(rng.choice(letters, PROBE_CHARS)) for _ in range(cfg.data.probe_count)]
    logits = rng.standard_normal((len(texts), NUM_LABELS))
    splits = types.SimpleNamespace(num_labels=NUM_LABELS)
    identity = {"name": "minilm-l6", "sha256": "ab" * 32}
    manifest = _manifest(cfg, identity, splits, adapter, quant, texts, logits, logits + 0.01, f"uniform:{rank}")
    schemes = {k: (quant if ".lora_" in k else "fp16") for k in tensors}
    return pl.encode(manifest, tensors, schemes, cfg.finetune.block_size, double_quant), tensors


@pytest.mark.parametrize("rank", range(2, 17))
def test_nf4_payload_is_at_least_7x_smaller_than_fp32(rank):
    payload, tensors = _payload(rank, "nf4")
    fp32_bytes = FP32_BYTES * sum(v.size for v in tensors.values())  # as finetune_and_pack reports it
    assert fp32_bytes / len(payload) >= 7.0, (rank, fp32_bytes, len(payload))


def test_rank_1_and_format_1_figures():
    """Rank 1 (the head and manifest weigh more) and format 1 (fp32 scales, plain manifest): below 7x."""
    payload, tensors = _payload(1, "nf4")
    assert 6.5 < FP32_BYTES * sum(v.size for v in tensors.values()) / len(payload) < 7.0
    payload, tensors = _payload(3, "nf4", double_quant=False)
    assert FP32_BYTES * sum(v.size for v in tensors.values()) / len(payload) < 6.0


@pytest.mark.parametrize("quant", ["nf4", "int8", "fp4", "fp16"])
@pytest.mark.parametrize("double_quant", [True, False])
def test_predicted_body_is_exact(quant, double_quant):
    """The policy's cost model predicts the LoRA body to the byte; a calibrated overhead makes it the payload."""
    for rank in (1, 5):
        payload, tensors = _payload(rank, quant, double_quant)
        h = pl.parse_header(payload)
        head = sum(pl.tensor_nbytes(v.shape, "fp16", 64, double_quant) for k, v in tensors.items() if ".lora_" not in k)
        ranks = {m: rank for m in SHAPES}
        assert h.body_len == pl.lora_body_bytes(ranks, SHAPES, quant, 64, double_quant) + head
        overhead = pl.HEADER_BYTES + h.manifest_len + head
        assert len(payload) == lora_payload_bytes(ranks, SHAPES, quant, 64, overhead, double_quant)
