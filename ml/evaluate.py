"""Logits and accuracy of a classifier on texts (batched, no gradients), and a base model with a peft folder applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ml.data import Example
from testbed.progress import NoBar, progress
from testbed.sections.adapter import ModelConfig

BAR_MIN_BATCHES = 8  # evaluations shorter than this many batches draw no progress bar


def encode(tokenizer, texts: list[str], max_length: int, on: torch.device) -> dict[str, torch.Tensor]:
    """Tokenize a batch with padding and truncation to max_length."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(on) for k, v in batch.items()}


@torch.no_grad()
def logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """fp32 logits [len(texts), num_labels] in eval mode (the model's mode is restored); a bar over the batches
    when there are many and the command line turned bars on."""
    was_training = model.training
    model.eval()
    on = next(model.parameters()).device
    out = []
    batches = -(-len(texts) // batch_size)
    with progress(batches, "evaluating", unit="batch") if batches >= BAR_MIN_BATCHES else NoBar(batches) as bar:
        for i in range(0, len(texts), batch_size):
            out.append(model(**encode(tokenizer, texts[i:i + batch_size], max_length, on)).logits.float().cpu())
            bar.update()
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def load_adapted(model_cfg: ModelConfig, folder: str | Path, num_labels: int):
    """(model, tokenizer): the base classifier with a peft folder loaded by plain PeftModel.from_pretrained."""
    from peft import PeftModel

    from ml.models import load_classifier

    base, tokenizer = load_classifier(model_cfg, num_labels)
    model = PeftModel.from_pretrained(base, str(folder))
    model.eval()
    return model, tokenizer


def accuracy(model, tokenizer, examples: list[Example], max_length: int, batch_size: int = 64) -> float:
    """Share of examples whose argmax logit is the label."""
    if not examples:
        return float("nan")
    pred = logits(model, tokenizer, [t for t, _ in examples], max_length, batch_size).argmax(axis=1)
    return float(np.mean(pred == np.array([y for _, y in examples])))
