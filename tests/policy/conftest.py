"""Fixtures: a synthetic surrogate data file in the shipped format (MiniLM's 36 projections, known loss)."""

import json
import os

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the policy networks are small: one thread avoids synchronisation overhead

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KINDS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense"]


def synthetic_data(runs: int = 40, seed: int = 0, r_max: int = 16) -> dict:
    """Fine-tune records whose loss falls with log(1 + rank), faster on value and intermediate projections."""
    from policy.finetunes import design_rank_vectors

    modules = [f"bert.encoder.layer.{layer}.{k}" for layer in range(6) for k in KINDS]
    shapes = {m: [1536, 384] if "intermediate" in m else [384, 1536] if m.endswith(f"{m.split('.')[3]}.output.dense")
              else [384, 384] for m in modules}
    rng = np.random.default_rng(seed)
    w = np.array([0.03 if ("value" in m or "intermediate" in m) else 0.01 for m in modules])
    out = []
    for i, v in enumerate(design_rank_vectors(modules, r_max, runs, seed)):
        gain = (w * np.log1p(np.array(v))).sum() / np.log1p(r_max)
        loss = 0.69 - 0.5 * (1 - np.exp(-3 * gain)) + rng.normal(0, 0.003)
        out.append({"ranks": v, "method": "lora", "entropy": 0.9 + 0.01 * (i % 3), "oov_rate": 0.1 + 0.01 * (i % 3),
                    "loss": float(loss), "accuracy": float(1.2 - loss)})
    for r in (2, 4, 8):
        out.append({"ranks": [int(x) for x in rng.integers(0, 2 * r, len(modules))], "method": f"adalora:{r}",
                    "entropy": 0.9, "oov_rate": 0.1, "loss": 0.45, "accuracy": 0.75})
    return {"model": "minilm-l6", "task": "rotten_tomatoes", "modules": modules, "shapes": shapes, "r_max": r_max,
            "base_loss": 0.69, "base_accuracy": 0.5, "runs": out}


@pytest.fixture(scope="session")
def synth_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("surrogate") / "synthetic.json"
    path.write_text(json.dumps(synthetic_data()))
    return path


@pytest.fixture
def cfg(synth_file, tmp_path):
    from testbed.config import load

    return load(overrides=[f"policy.surrogate_data={synth_file}", f"policy.out_dir={tmp_path / 'runs'}",
                           f"policy.checkpoint={tmp_path / 'ckpt' / 'airllm.pt'}"])
