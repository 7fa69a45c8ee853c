"""What applying one payload on the edge did: installed, or refused at which stage and why (torch-free).

`edge_node.pipeline.apply_payload` returns one; the daemon turns it into an ApplyResult message and
`airlora apply --json` prints `to_dict()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApplyReport:
    """The outcome of one apply: an installed adapter with its checks and accuracy, or a refusal."""

    installed: bool
    reason: str | None = None
    """Why the payload was refused; None when installed."""
    stage: str | None = None
    """Refusals: the stage that refused ("check", "verify" or "install")."""
    adapter_dir: str | None = None
    """The live adapter folder afterwards (after a refusal: the previous one, None when none)."""
    apply_s: float = 0.0
    """Wall time of the whole apply."""
    sha256: str | None = None
    """SHA-256 of the payload, once it decoded."""
    payload_bytes: int | None = None
    """Size of the payload (installs, and refusals at the check stage)."""
    signed_by: str | None = None
    """Installs: the key id that signed the payload (None: installed unsigned under edge.allow_unsigned)."""
    probe_max_abs_err: float | None = None
    """Installs: largest |edge logit - host logit| on the manifest's probe texts."""
    ranks: dict[str, int] | None = None
    """Installs: LoRA rank per module."""
    quant: str | None = None
    """Installs: the quantization scheme of the payload."""
    accuracy: float | None = None
    """Installs with evaluation: accuracy on the task's test split."""
    eval_s: float | None = None
    """Installs with evaluation: wall time of the evaluation."""

    def to_dict(self) -> dict[str, Any]:
        """The report as `airlora apply --json` prints it (only the keys that apply to this outcome)."""
        if not self.installed:
            out: dict[str, Any] = {"installed": False, "stage": self.stage, "reason": self.reason,
                                   "adapter_dir": self.adapter_dir, "apply_s": self.apply_s}
            if self.payload_bytes is not None:
                out["payload_bytes"] = self.payload_bytes
            if self.sha256 is not None:
                out["sha256"] = self.sha256
            return out
        out = {"installed": True, "adapter_dir": self.adapter_dir, "sha256": self.sha256,
               "payload_bytes": self.payload_bytes, "signed_by": self.signed_by,
               "probe_max_abs_err": self.probe_max_abs_err, "reason": None,
               "ranks": self.ranks, "quant": self.quant}
        if self.eval_s is not None:
            out["accuracy"] = self.accuracy
            out["eval_s"] = self.eval_s
        out["apply_s"] = self.apply_s
        return out
