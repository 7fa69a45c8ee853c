"""The seeded head: the same values wherever the model is loaded (CPU, device_map placement, a GPU)."""

import pytest
import torch

from ml.models import load_classifier, seed_missing_weights
from testbed.sections.adapter import ModelConfig


def _cfg(folder) -> ModelConfig:
    return ModelConfig(name=str(folder), cache_dir="/tmp/airlora-test-cache")


def test_missing_weights_come_from_the_seed_alone(tiny_bert):
    model, _ = load_classifier(_cfg(tiny_bert), 3)
    head = model.classifier
    reference = torch.empty(head.weight.shape).normal_(0.0, model.config.initializer_range,
                                                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(head.weight, reference) and torch.count_nonzero(head.bias) == 0
    with torch.no_grad():  # whatever was there and whatever the global generator did before
        head.weight.fill_(3.0)
        head.bias.fill_(1.0)
    torch.manual_seed(1234)
    torch.rand(1000)
    seed_missing_weights(model, ["classifier.weight", "classifier.bias"], seed=0)
    assert torch.equal(head.weight, reference) and torch.count_nonzero(head.bias) == 0
    backbone = model.bert.encoder.layer[0].attention.self.query.weight.clone()
    seed_missing_weights(model, ["classifier.weight"], seed=7)
    assert not torch.equal(head.weight, reference)
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, backbone)  # loaded weights stay


def test_head_is_the_same_with_device_map_placement(tiny_bert, monkeypatch):
    plain, _ = load_classifier(_cfg(tiny_bert), 2)
    import ml.models as models

    def lab_host_placement(on):  # what a GPU host does (device_map), on this CPU; the global generator moves on
        torch.rand(4096)
        return {"device_map": {"": "cpu"}}

    monkeypatch.setattr(models, "layer_placement", lab_host_placement)
    placed, _ = load_classifier(_cfg(tiny_bert), 2, on=None)
    assert torch.equal(plain.classifier.weight, placed.classifier.weight)
    assert torch.equal(plain.classifier.bias, placed.classifier.bias)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA GPU (a lab host): checks a GPU-loaded head equals the CPU edge's")
def test_head_on_a_gpu_equals_the_cpu_edge(tiny_bert):
    cpu, _ = load_classifier(_cfg(tiny_bert), 2, on=torch.device("cpu"))
    gpu, _ = load_classifier(_cfg(tiny_bert), 2)
    assert torch.equal(cpu.classifier.weight, gpu.classifier.weight.cpu())
