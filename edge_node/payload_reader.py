"""The edge's radio-side checks of a payload, without torch: signature, size, SHA-256, manifest, model identity."""

from __future__ import annotations

from typing import Any

from edge_node.verify import check_identity, model_settings
from adapters.identity import model_identity
from adapters.payload import MAX_ELEMENTS, Payload, PayloadError, decode, read_manifest, total_size
from adapters.signing import SIGNED_HEADER_BYTES, TrustStore, is_signed, open_payload
from testbed.config import TestbedConfig
from testbed.errors import AirLoraError
from testbed.keys import edge_trusted_dir, trusted_signing_keys
from testbed.sections.adapter import ModelConfig


def edge_identity(cfg: TestbedConfig) -> dict[str, str]:
    """This edge's base-model identity (name + SHA-256 of its weight files; cached)."""
    return model_identity(cfg.model.name, cfg.model.cache_dir)


def edge_trust(cfg: TestbedConfig) -> TrustStore:
    """The host public keys this edge trusts now (read from edge_trusted_dir; PayloadError on a bad key file)."""
    directory = edge_trusted_dir(cfg)
    try:
        return TrustStore.from_public_keys(trusted_signing_keys(directory), source=str(directory))
    except AirLoraError as exc:
        raise PayloadError(f"the edge's trust store is unusable: {exc}") from None


def early_refusal(prefix: bytes, identity: dict[str, str], task: str | None = None,
                  trust: TrustStore | None = None, allow_unsigned: bool = False) -> str | None:
    """A reason to stop receiving, from the signature header and manifest alone; None when it may be accepted
    later. With a trust store, an unsigned payload or an unknown key is refused here already."""
    if trust is not None and not allow_unsigned and len(prefix) >= SIGNED_HEADER_BYTES:
        if not is_signed(prefix):
            return "unsigned payload (or not an adapter payload)"
        kid = bytes(prefix[8:16]).hex()
        if kid not in trust.keys:
            return f"payload signed by unknown key {kid}: not in {trust.source}"
    inner = prefix[SIGNED_HEADER_BYTES:] if is_signed(prefix) else prefix
    try:
        check_identity(read_manifest(inner), identity, task)
    except PayloadError as exc:
        if str(exc).startswith("payload is truncated"):
            return None  # the manifest has not fully arrived yet
        return str(exc)
    return None


def check_payload(buf: bytes, identity: dict[str, str], task: str | None = None, *, trust: TrustStore,
                  allow_unsigned: bool = False, max_elements: int = MAX_ELEMENTS, max_num_labels: int = 1024,
                  model_cfg: ModelConfig | None = None) -> Payload:
    """Verify the signature first (adapters.signing: nothing is parsed before), then check the manifest (its
    tensors' values against max_elements, the model identity, num_labels and max_length against their bounds)
    before anything is dequantized, then decode: exact size, SHA-256, tensors. Raises PayloadError (reason)."""
    opened = open_payload(buf, trust, allow_unsigned)
    manifest = read_manifest(opened.payload, max_elements)
    check_identity(manifest, identity, task)
    model_settings(manifest, model_cfg or ModelConfig(), max_num_labels)
    payload = decode(opened.payload, max_elements)
    payload.signed_by = opened.signed_by
    return payload


__all__ = ["Payload", "PayloadError", "check_payload", "early_refusal", "edge_identity", "edge_trust", "total_size"]


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Ranks and quantization of a manifest, for reports."""
    return {"ranks": {m: v["r"] for m, v in manifest.get("peft", {}).get("modules", {}).items()},
            "quant": manifest.get("quant", {}).get("scheme")}
