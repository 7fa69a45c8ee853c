"""LoRA with a rank vector and the AdaLoRA baseline on tiny random-init models (seconds)."""

import numpy as np
import pytest
import torch

from ml import finetune as ft
from adapters import ranks as rk
from ml.data import load_task
from ml.evaluate import logits
from ml.models import head_module_names, load_classifier
from testbed.sections.adapter import DataConfig, FinetuneConfig, ModelConfig


@pytest.fixture(scope="module")
def splits():
    return load_task(DataConfig(task="bbc_news", train_size=160, val_size=0, test_size=40))


def test_head_is_deterministic(tiny_bert):
    cfg = ModelConfig(name=str(tiny_bert), cache_dir="/tmp/airlora-test-cache")
    a, _ = load_classifier(cfg, 5)
    b, _ = load_classifier(cfg, 5)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    c, _ = load_classifier(cfg.model_copy(update={"head_seed": 1}), 5)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_lora_on_tiny_llama_learns(tiny_llama, splits):
    model, tok = load_classifier(ModelConfig(name=str(tiny_llama), max_length=32), splits.num_labels)
    modules = rk.adaptable_modules(model)
    ranks = {m: (4 if "layers.0." in m else 0) for m in modules}
    cfg = FinetuneConfig(steps=20, batch_size=16, lr=1e-2)
    result = ft.train_lora(model, tok, splits.train, ranks, cfg, head_module_names(model), 32)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert result.adapter.ranks == {m: 4 for m in modules if "layers.0." in m}
    assert result.adapter.modules_to_save == ["score"]
    a = result.adapter.lora_a[modules[0]]
    assert a.shape == (4, model.config.hidden_size)
    n_lora = sum(4 * sum(model.get_submodule(m).base_layer.weight.shape) for m in ranks if ranks[m])
    assert result.trainable_params == n_lora + model.config.hidden_size * splits.num_labels


def test_adalora_runs_reports_ranks_and_folds_exactly(tiny_bert, splits, tmp_path):
    from adapters.rebuild import write_peft_folder
    from peft import PeftModel

    mcfg = ModelConfig(name=str(tiny_bert), max_length=32)
    model, tok = load_classifier(mcfg, splits.num_labels)
    modules = rk.adaptable_modules(model)
    cfg = FinetuneConfig(steps=20, batch_size=8, lr=1e-2)
    result = ft.train_adalora(model, tok, splits.train, modules, 2, cfg, head_module_names(model), 32)
    ranks = result.adapter.ranks
    assert ranks and all(1 <= r <= result.adapter.info["init_r"] for r in ranks.values())
    assert sum(ranks.values()) <= 2 * len(modules)  # the budget: average target rank 2
    spec = {"modules": {m: {"r": r, "alpha": result.adapter.alphas[m]} for m, r in ranks.items()},
            "modules_to_save": result.adapter.modules_to_save, "task_type": "SEQ_CLS", "dropout": 0.0}
    folder = write_peft_folder(spec, result.adapter.tensors(), tmp_path / "ad", "tiny")
    texts = [t for t, _ in splits.test[:8]]
    want = logits(result.model, tok, texts, 32)
    base, _ = load_classifier(mcfg, splits.num_labels)
    got = logits(PeftModel.from_pretrained(base, str(folder)), tok, texts, 32)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_adalora_factors_start_orthonormal_and_the_schedule_is_recorded(tiny_bert, splits):
    from peft import AdaLoraConfig, get_peft_model

    model, tok = load_classifier(ModelConfig(name=str(tiny_bert), max_length=32), splits.num_labels)
    modules = rk.adaptable_modules(model)
    peft_model = get_peft_model(model, AdaLoraConfig(task_type="SEQ_CLS", target_modules=modules, init_r=6,
                                                     target_r=4, total_step=10))
    ft._orthonormal_factors(peft_model)
    layer = peft_model.base_model.model.get_submodule(modules[0])
    a, b = layer.lora_A["default"].detach(), layer.lora_B["default"].detach()
    assert torch.allclose(a @ a.T, torch.eye(6), atol=1e-5) and torch.allclose(b.T @ b, torch.eye(6), atol=1e-5)
    model, tok = load_classifier(ModelConfig(name=str(tiny_bert), max_length=32), splits.num_labels)
    result = ft.train_adalora(model, tok, splits.train, modules, 2, FinetuneConfig(steps=12, batch_size=8), ["classifier"], 32)
    schedule = result.adapter.info["schedule"]
    assert schedule["orth_reg_weight"] == 0.0 and schedule["orthonormal_init"] is True
    assert result.adapter.info["init_r"] == 3 and 0 < sum(result.adapter.ranks.values()) <= 3 * len(modules)
