"""One payload on the edge: check, rebuild, verify the probes, install atomically, evaluate.

`apply_payload(cfg, payload)` never raises for a bad payload: it returns an ApplyReport (installed False,
the stage that refused and why) and the previously installed adapter stays live; a refusal writes nothing
under edge.adapter_dir. The signature is checked first, against the trust store as it is now (a key copied
into edge.trusted_keys_dir counts from the next payload on), before any parsing. Torch is imported only
once the payload has passed the radio-side checks (signature, size, SHA-256, manifest, model identity), and
nothing is dequantized or built before the manifest's sizes are within edge.max_adapter_elements and its
num_labels and max_length within their bounds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edge_node import install as inst
from edge_node.apply_report import ApplyReport
from edge_node.payload_reader import check_payload, edge_identity, edge_trust, summary
from edge_node.verify import model_settings
from adapters.rebuild import rebuild
from adapters.payload import PayloadError
from testbed.config import TestbedConfig
from testbed.errors import AirLoraError


def _refusal(stage: str, reason: str, cfg: TestbedConfig, started: float, *, sha256: str | None = None,
             payload_bytes: int | None = None) -> ApplyReport:
    current = inst.current_adapter(cfg.edge.adapter_dir)
    return ApplyReport(installed=False, stage=stage, reason=reason, adapter_dir=str(current) if current else None,
                       apply_s=time.perf_counter() - started, sha256=sha256, payload_bytes=payload_bytes)


def read_payload_file(path: Path, max_bytes: int) -> bytes:
    """A payload spilled to a file (a large v2 reassembly): its size checked against max_bytes before anything is
    allocated, then read whole (the signature check needs every byte). PayloadError when over the limit or
    unreadable."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise PayloadError(f"payload file of {size} bytes exceeds edge.max_payload_bytes {max_bytes}")
            data = f.read(size)
    except OSError as exc:
        raise PayloadError(f"cannot read the received payload file: {exc.strerror or exc}") from None
    if len(data) != size:
        raise PayloadError(f"payload file shrank while read: {len(data)} of {size} bytes")
    return data


def apply_payload(cfg: TestbedConfig, payload: bytes | Path, evaluate: bool = True) -> ApplyReport:
    """Check, rebuild, verify, install and evaluate one payload (bytes, or a file a v2 reassembly spilled it
    to); a report either way."""
    started = time.perf_counter()
    if isinstance(payload, Path):
        try:
            payload = read_payload_file(payload, cfg.edge.max_payload_bytes)
        except PayloadError as exc:
            return _refusal("check", str(exc), cfg, started)
    try:
        decoded = check_payload(payload, edge_identity(cfg), cfg.data.task, trust=edge_trust(cfg),
                                allow_unsigned=cfg.edge.allow_unsigned, max_elements=cfg.edge.max_adapter_elements,
                                max_num_labels=cfg.edge.max_num_labels, model_cfg=cfg.model)
    except PayloadError as exc:
        return _refusal("check", str(exc), cfg, started, payload_bytes=len(payload))
    manifest = decoded.manifest
    try:
        staged = inst.staging_dir(cfg.edge.adapter_dir)
    except OSError as exc:
        return _refusal("install", f"edge.adapter_dir: cannot create a staging folder ({exc.strerror or exc})", cfg,
                        started, sha256=decoded.sha256)
    try:
        rebuild(decoded, staged)
        from ml import evaluate as ev  # torch from here on
        from edge_node.verify import check_probe

        model_cfg, num_labels = model_settings(manifest, cfg.model, cfg.edge.max_num_labels)  # checked before decode
        model, tokenizer = ev.load_adapted(model_cfg, staged, num_labels)
        probe = ev.logits(model, tokenizer, manifest["probe"]["texts"], model_cfg.max_length)
        err = check_probe(probe, manifest)
    except (PayloadError, AirLoraError) as exc:
        inst.discard(staged)
        return _refusal("verify", str(exc), cfg, started, sha256=decoded.sha256)
    except Exception as exc:  # peft/torch refusing the folder: still a refusal, never a half install
        inst.discard(staged)
        return _refusal("verify", f"the adapter does not load: {type(exc).__name__}: {exc}", cfg, started,
                        sha256=decoded.sha256)
    try:
        folder = inst.install(staged, cfg.edge.adapter_dir, decoded.sha256[:16], cfg.edge.keep_previous)
    except OSError as exc:
        inst.discard(staged)
        return _refusal("install", f"cannot install: {exc}", cfg, started, sha256=decoded.sha256)
    accuracy = eval_s = None
    if evaluate:
        from ml.data import load_task

        t0 = time.perf_counter()
        accuracy = ev.accuracy(model, tokenizer, load_task(cfg.data).test, model_cfg.max_length)
        eval_s = time.perf_counter() - t0
    return ApplyReport(installed=True, adapter_dir=str(folder), sha256=decoded.sha256, payload_bytes=len(payload),
                       signed_by=decoded.signed_by, probe_max_abs_err=err, **summary(manifest), accuracy=accuracy,
                       eval_s=eval_s, apply_s=time.perf_counter() - started)


def installed_adapter(cfg: TestbedConfig) -> Path | None:
    """The live adapter folder of this edge, if any."""
    return inst.current_adapter(cfg.edge.adapter_dir)
