"""The cost of a rank vector: exact payload bytes and the real airtime at the MCS the link would pick."""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapters.payload import tensor_nbytes
from radio import mcs as mcs_module
from radio.airtime import burst_samples
from radio.mcs import Mcs

QUANT_SCHEMES = {"none": "fp32", "fp32": "fp32", "fp16": "fp16", "int8": "int8", "nf4": "nf4", "fp4": "fp4"}


def lora_payload_bytes(ranks: dict[str, int], shapes: dict[str, tuple[int, int]], quant: str, block_size: int,
                       overhead_bytes: int) -> int:
    """Bytes of an adapter payload: LoRA A (r x in) and B (out x r) per adapted module, plus a fixed overhead
    (header, manifest, classifier head) measured from a real payload."""
    scheme = QUANT_SCHEMES.get(quant, quant)
    body = 0
    for module, r in ranks.items():
        if r > 0:
            out_f, in_f = shapes[module]
            body += tensor_nbytes((r, in_f), scheme, block_size) + tensor_nbytes((out_f, r), scheme, block_size)
    return body + overhead_bytes


@dataclass(frozen=True)
class LinkModel:
    """The radio as the cost sees it: the same numbers the link uses."""

    sample_rate_hz: float
    samples_per_symbol: int
    rolloff: float
    packet_payload_bytes: int
    target_per: float

    @property
    def bandwidth_hz(self) -> float:
        return (1.0 + self.rolloff) * self.sample_rate_hz / self.samples_per_symbol

    def mcs_for(self, snr_db: float) -> Mcs:
        return mcs_module.select(snr_db, self.target_per)

    def airtime_s(self, payload_bytes: int, snr_db: float) -> float:
        """Real airtime of one delivery at the MCS picked for snr_db, inflated by the expected repeats."""
        mcs = self.mcs_for(snr_db)
        samples = burst_samples(payload_bytes, self.packet_payload_bytes, mcs, self.samples_per_symbol, self.rolloff)
        return samples / self.sample_rate_hz / (1.0 - min(self.target_per, 0.9))

    def shannon_airtime_s(self, payload_bytes: int, snr_db: float) -> float:
        """The paper's ideal cost: bits / (bandwidth x log2(1 + SNR))."""
        capacity = self.bandwidth_hz * math.log2(1.0 + 10 ** (snr_db / 10.0))
        return 8.0 * payload_bytes / max(capacity, 1e-9)
