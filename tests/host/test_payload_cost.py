"""The live policies' cost: payload bytes of a rank vector, calibrated overhead, airtime of the configured frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.payload_cost import PayloadCost
from policy.cost import OVERHEAD_BYTES, lora_payload_bytes
from radio.airtime import delivery_airtime_s
from radio.delivery_model import delivery_airtime_s_v2
from radio.link import LinkSettings
from testbed.config import validate

SHAPES = {m: tuple(s) for m, s in json.loads(
    (Path(__file__).parents[2] / "policy/data/minilm_rt_finetunes.json").read_text())["shapes"].items()}


@pytest.mark.parametrize("frame, model", [("v1", delivery_airtime_s), ("v2", delivery_airtime_s_v2)])
def test_cost_is_the_configured_frames_expected_airtime(frame, model) -> None:
    cfg = validate({"radio": {"frame": frame}})
    settings = LinkSettings.from_config(cfg.radio)
    cost = PayloadCost(cfg, settings, SHAPES)
    ranks = {m: 8 for m in SHAPES}
    size = lora_payload_bytes(ranks, SHAPES, cfg.finetune.quant, cfg.finetune.block_size, OVERHEAD_BYTES,
                              cfg.finetune.double_quant)
    assert cost.payload_bytes(ranks) == size
    for snr in (3.0, 12.0, 25.0):
        assert cost(ranks, snr) == pytest.approx(model(settings, size, snr), rel=1e-12)
    # more rank costs more airtime; a higher SNR costs less
    assert cost({m: 16 for m in SHAPES}, 12.0) > cost(ranks, 12.0) > cost(ranks, 25.0)


def test_calibrate_takes_the_overhead_from_a_real_payload_size() -> None:
    cfg = validate({})
    cost = PayloadCost(cfg, LinkSettings.from_config(cfg.radio), SHAPES)
    ranks = {m: 4 for m in SHAPES}
    body = cost.body_bytes(ranks)
    before = cost(ranks, 15.0)
    cost.calibrate(ranks, body + 1000)
    assert cost.overhead_bytes == 1000 and cost.payload_bytes(ranks) == body + 1000
    assert cost(ranks, 15.0) < before  # 1000 bytes of overhead instead of the 16 kB first guess
    cost.calibrate(ranks, body - 5)  # never negative
    assert cost.overhead_bytes == 0
