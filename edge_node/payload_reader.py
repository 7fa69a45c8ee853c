"""The edge's radio-side checks of a payload, without torch: size, SHA-256, manifest and model identity."""

from __future__ import annotations

from typing import Any

from edge_node.verify import check_identity
from adapters.identity import model_identity
from adapters.payload import Payload, PayloadError, decode, read_manifest, total_size
from testbed.config import TestbedConfig


def edge_identity(cfg: TestbedConfig) -> dict[str, str]:
    """This edge's base-model identity (name + SHA-256 of its weight files; cached)."""
    return model_identity(cfg.model.name, cfg.model.cache_dir)


def early_refusal(prefix: bytes, identity: dict[str, str], task: str | None = None) -> str | None:
    """A reason to stop receiving, from the header and manifest alone; None when it may be accepted later."""
    try:
        check_identity(read_manifest(prefix), identity, task)
    except PayloadError as exc:
        if str(exc).startswith("payload is truncated"):
            return None  # the manifest has not fully arrived yet
        return str(exc)
    return None


def check_payload(buf: bytes, identity: dict[str, str], task: str | None = None) -> Payload:
    """Decode a complete payload: exact size, SHA-256, manifest, identity; raises PayloadError with the reason."""
    payload = decode(buf)
    check_identity(payload.manifest, identity, task)
    return payload


__all__ = ["Payload", "PayloadError", "check_payload", "early_refusal", "edge_identity", "total_size"]


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Ranks and quantization of a manifest, for reports."""
    return {"ranks": {m: v["r"] for m, v in manifest.get("peft", {}).get("modules", {}).items()},
            "quant": manifest.get("quant", {}).get("scheme")}
