"""The size side of a rank vector's cost: exact adapter payload bytes, and the overhead sent with every adapter.

The airtime side is the radio's: radio.airtime.delivery_airtime_s (real v1 link), radio.delivery_model.delivery_airtime_s_v2
(real v2 link, radio.frame v2) and shannon_airtime_s (ideal).
"""

from __future__ import annotations

from adapters.payload import tensor_nbytes

QUANT_SCHEMES = {"none": "none", "fp32": "none", "fp16": "fp16", "int8": "int8", "nf4": "nf4", "fp4": "fp4"}
OVERHEAD_BYTES = 16384  # manifest + classifier head, as `airlora run` assumes before it calibrates on a real payload


def lora_payload_bytes(ranks: dict[str, int], shapes: dict[str, tuple[int, int]], quant: str, block_size: int,
                       overhead_bytes: int, double_quant: bool = True) -> int:
    """Bytes of an adapter payload: LoRA A (r x in) and B (out x r) per adapted module, plus a fixed overhead
    (header, manifest, classifier head) measured from a real payload. double_quant=False: format 1's fp32
    block scales (adapters.payload.encode's double_quant)."""
    scheme = QUANT_SCHEMES.get(quant, quant)
    body = 0
    for module, r in ranks.items():
        if r > 0:
            out_f, in_f = shapes[module]
            body += (tensor_nbytes((r, in_f), scheme, block_size, double_quant)
                     + tensor_nbytes((out_f, r), scheme, block_size, double_quant))
    return body + overhead_bytes
