"""Checks before install: the base model's identity and the model settings a payload asks for (torch-free), and
the probe logits (needs the model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from adapters.payload import PayloadError
from testbed.sections.adapter import MAX_LENGTH_RANGE, ModelConfig

# Largest |edge logit - host logit| on the probes, per scheme. The host's probe logits already include the
# quantization error (it evaluates the dequantized adapter), so these only absorb numerics across machines
# (CPU vs GPU kernels, thread counts); a wrong tensor moves logits far more.
PROBE_TOLERANCE: dict[str, float] = {"none": 2e-3, "fp16": 2e-3, "int8": 5e-3, "nf4": 1e-2, "fp4": 1e-2}


class RefusedError(PayloadError):
    """A well-formed payload this edge will not install (foreign model, failed probe)."""


def check_identity(manifest: dict[str, Any], identity: dict[str, str], task: str | None = None) -> None:
    """Refuse a payload built for another base model (or task)."""
    theirs = manifest["model"]
    if theirs.get("sha256") != identity["sha256"] or theirs.get("name") != identity["name"]:
        raise RefusedError(
            f"foreign model: the payload is for {theirs.get('name')!r} (weights sha256 {str(theirs.get('sha256'))[:12]}), "
            f"this edge has {identity['name']!r} (weights sha256 {identity['sha256'][:12]})")
    if task is not None and theirs.get("task") not in (None, task):
        raise RefusedError(f"foreign task: the payload is for {theirs.get('task')!r}, this edge evaluates {task!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def model_settings(manifest: dict[str, Any], model_cfg: ModelConfig, max_num_labels: int) -> tuple[ModelConfig, int]:
    """(the edge's model section with the payload's max_length, the payload's num_labels), each checked against
    its bounds before any model is built: num_labels an integer in 1..max_num_labels (edge.max_num_labels) that
    the probe logits agree with, max_length one the `model:` section accepts (validated, never copied in)."""
    theirs = manifest["model"]
    num_labels = theirs.get("num_labels")
    if not (_is_int(num_labels) and 1 <= num_labels <= max_num_labels):
        raise RefusedError(f"num_labels {str(num_labels)[:20]!r} is not an integer in 1..{max_num_labels} "
                           "(edge.max_num_labels)")
    widths = {len(row) for row in manifest["probe"]["logits"]}
    if widths - {num_labels}:
        raise RefusedError(f"probe logits have {sorted(widths)[:3]} columns but num_labels is {num_labels}")
    max_length = theirs.get("max_length", model_cfg.max_length)
    try:
        if not _is_int(max_length):
            raise ValueError
        settings = ModelConfig.model_validate({**model_cfg.model_dump(), "max_length": max_length})
    except (ValueError, ValidationError):
        low, high = MAX_LENGTH_RANGE
        raise RefusedError(f"max_length {str(max_length)[:20]!r} is not an integer in {low}..{high}") from None
    return settings, num_labels


def probe_error(edge_logits: np.ndarray, manifest: dict[str, Any]) -> float:
    """Max |edge - host| over the probe logits (inf when the shapes differ)."""
    host = np.asarray(manifest["probe"]["logits"], dtype=np.float64)
    edge = np.asarray(edge_logits, dtype=np.float64)
    return float(np.max(np.abs(edge - host))) if host.shape == edge.shape and host.size else float("inf")


def check_probe(edge_logits: np.ndarray, manifest: dict[str, Any]) -> float:
    """Refuse when the edge's probe logits differ from the host's beyond the scheme's tolerance."""
    scheme = manifest.get("quant", {}).get("scheme", "none")
    tol = PROBE_TOLERANCE.get(scheme, 0.0)
    err = probe_error(edge_logits, manifest)
    if not err <= tol:
        raise RefusedError(f"probe logits differ from the host's by {err:.3g} (tolerance for {scheme}: {tol:g})")
    return err
