"""Apply an adapter folder to the edge's copy of the base model and evaluate it (imports torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from peft import PeftModel

from host.data import Splits
from host.evaluate import accuracy, logits
from host.models import load_classifier
from testbed.sections.adapter import ModelConfig


def load_adapted(model_cfg: ModelConfig, folder: str | Path, num_labels: int):
    """(model, tokenizer): the base classifier with the peft folder loaded by plain PeftModel.from_pretrained."""
    base, tokenizer = load_classifier(model_cfg, num_labels)
    model = PeftModel.from_pretrained(base, str(folder))
    model.eval()
    return model, tokenizer


def probe_logits(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """The adapted model's logits on the manifest's probe texts."""
    return logits(model, tokenizer, texts, max_length)


def test_accuracy(model, tokenizer, splits: Splits, max_length: int) -> float:
    """Accuracy on the edge's own copy of the test split."""
    return accuracy(model, tokenizer, splits.test, max_length)
