"""The rank policies' cost of a rank vector on the live link: its payload's expected airtime at an SNR.

One piece for `airlora run`, the fleet and the federated rounds: payload bytes from the exact adapter format
(policy.cost.lora_payload_bytes) with an overhead (manifest, head) calibrated on every real payload, and the
expected airtime of the configured frame (radio.delivery_model.expected_airtime_s: v1 packets or v2 bursts).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from policy.cost import OVERHEAD_BYTES, lora_payload_bytes
from radio.delivery_model import expected_airtime_s
from radio.link import LinkSettings
from testbed.config import TestbedConfig


class PayloadCost:
    """cost(ranks, snr_db) -> expected airtime in seconds; calibrate() after each real payload."""

    def __init__(self, cfg: TestbedConfig, settings: LinkSettings, shapes: dict[str, tuple[int, int]]) -> None:
        self.settings, self.shapes = settings, shapes
        self.quant, self.block_size, self.double_quant = (cfg.finetune.quant, cfg.finetune.block_size,
                                                          cfg.finetune.double_quant)
        self.overhead_bytes = OVERHEAD_BYTES
        self._airtime: dict[tuple[int, float], float] = {}

    def body_bytes(self, ranks: dict[str, int]) -> int:
        """The LoRA factors' bytes alone (no manifest, no head)."""
        return lora_payload_bytes(ranks, self.shapes, self.quant, self.block_size, 0, self.double_quant)

    def payload_bytes(self, ranks: dict[str, int]) -> int:
        """Expected payload size of a rank vector, the calibrated overhead included."""
        return self.body_bytes(ranks) + self.overhead_bytes

    def calibrate(self, ranks: dict[str, int], payload_bytes: int) -> None:
        """Take the overhead from a real payload made with these ranks."""
        self.overhead_bytes = max(payload_bytes - self.body_bytes(ranks), 0)

    def __call__(self, ranks: dict[str, int], snr_db: float) -> float:
        key = (self.payload_bytes(ranks), round(float(snr_db), 3))
        if key not in self._airtime:  # the v2 model walks the tail's bursts: policies ask for the same point often
            self._airtime[key] = expected_airtime_s(self.settings, key[0], key[1])  # order-independent
        return self._airtime[key]


class RoundInputs(NamedTuple):
    """What the rounds of `airlora run` (one edge or a fleet) choose ranks from and train on."""
    splits: Any
    features: dict[str, float]
    modules: list[str]
    shapes: dict[str, tuple[int, int]]
    cost: PayloadCost
    policy: Any


def round_inputs(cfg: TestbedConfig, settings: LinkSettings) -> RoundInputs:
    """The task's splits, the data's complexity as the policy sees it (held-out text against the training
    vocabulary), the adapted projections and their shapes, the cost and the rank policy cfg.run.policy."""
    from ml.data import load_task
    from ml.features import batch_features, vocabulary
    from ml.models import projection_shapes
    from policy.registry import make_policy

    splits = load_task(cfg.data)
    features = batch_features([t for t, _ in splits.val], vocabulary(t for t, _ in splits.train))
    modules, shapes = projection_shapes(cfg.model, cfg.finetune.target_modules, splits.num_labels)
    cost = PayloadCost(cfg, settings, shapes)
    policy = make_policy(cfg.run.policy, cost=cost, candidates=tuple(cfg.run.rank_candidates))
    return RoundInputs(splits, features, modules, shapes, cost, policy)
