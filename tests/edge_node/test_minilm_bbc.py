"""The one real-model test: MiniLM-L6 on a small BBC News split, host fine-tune -> NF4 payload -> edge apply."""

import pytest

from edge_node.pipeline import apply_payload
from edge_node.verify import PROBE_TOLERANCE
from host.pipeline import finetune_and_pack
from testbed.config import validate
from testbed.keys import host_signing_secret


def test_minilm_bbc_news_nf4_end_to_end(tmp_path):
    cfg = validate({
        "model": {"name": "minilm-l6", "max_length": 64},
        "data": {"task": "bbc_news", "train_size": 320, "val_size": 0, "test_size": 100, "seed": 0},
        "finetune": {"ranks": "uniform:8", "steps": 20, "batch_size": 16, "lr": 2e-3, "quant": "nf4"},
        "edge": {"adapter_dir": str(tmp_path / "edge")},
        "control": {"curve": {"keys_dir": str(tmp_path / "keys")}},
    })
    payload, host = finetune_and_pack(cfg, signing_key=host_signing_secret(cfg)[0])
    assert host["accuracy_before"] < 0.45
    assert host["accuracy_after"] > 0.6
    assert host["fp32_bytes"] / host["payload_bytes"] >= 6.0
    assert len(host["ranks"]) == 36 and set(host["ranks"].values()) == {8}
    assert host["trainable_params"] == 8 * 41472 + 384 * 5 + 5
    edge = apply_payload(cfg, payload)
    assert edge.installed, edge.reason
    assert edge.probe_max_abs_err <= PROBE_TOLERANCE["nf4"]
    # 100 test examples after 20 steps: NF4 may flip a few borderline ones (the 1.5-point figure is measured on
    # the full Rotten Tomatoes default, see `airlora finetune`); the edge must match the host's NF4 model exactly.
    assert abs(edge.accuracy - host["accuracy_after"]) <= 0.05
    assert edge.accuracy == pytest.approx(host["accuracy_after_quant"])
