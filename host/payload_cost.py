"""The rank policies' cost of a rank vector on the live link: its payload's expected airtime at an SNR.

One piece for `airlora run`, the fleet and the federated rounds: payload bytes from the exact adapter format
(policy.cost.lora_payload_bytes) with an overhead (manifest, head) calibrated on every real payload, and the
expected airtime of the configured frame (radio.delivery_model.expected_airtime_s: v1 packets or v2 bursts).
"""

from __future__ import annotations

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
            self._airtime[key] = expected_airtime_s(self.settings, key[0], snr_db)
        return self._airtime[key]
