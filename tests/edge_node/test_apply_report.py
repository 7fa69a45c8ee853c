"""ApplyReport.to_dict: the keys `airlora apply --json` prints, per outcome, in order."""

from edge_node.apply_report import ApplyReport


def test_refusal_at_check_names_the_payload_size() -> None:
    report = ApplyReport(installed=False, stage="check", reason="payload is truncated", adapter_dir=None,
                         apply_s=0.5, payload_bytes=100)
    assert report.to_dict() == {"installed": False, "stage": "check", "reason": "payload is truncated",
                                "adapter_dir": None, "apply_s": 0.5, "payload_bytes": 100}
    assert list(report.to_dict()) == ["installed", "stage", "reason", "adapter_dir", "apply_s", "payload_bytes"]


def test_refusal_after_decoding_names_the_sha256() -> None:
    report = ApplyReport(installed=False, stage="verify", reason="probe", adapter_dir="/a/v1", apply_s=1.0,
                         sha256="ab" * 32)
    assert list(report.to_dict()) == ["installed", "stage", "reason", "adapter_dir", "apply_s", "sha256"]
    assert report.to_dict()["sha256"] == "ab" * 32


def test_install_with_and_without_evaluation() -> None:
    common = dict(installed=True, adapter_dir="/a/v2", sha256="cd" * 32, payload_bytes=2048,
                  probe_max_abs_err=1e-4, ranks={"q": 4}, quant="nf4", apply_s=2.0)
    plain = ApplyReport(**common).to_dict()
    assert list(plain) == ["installed", "adapter_dir", "sha256", "payload_bytes", "signed_by", "probe_max_abs_err",
                           "reason", "ranks", "quant", "apply_s"]
    assert plain["reason"] is None and plain["ranks"] == {"q": 4}
    evaluated = ApplyReport(**common, accuracy=0.75, eval_s=0.25).to_dict()
    assert list(evaluated) == ["installed", "adapter_dir", "sha256", "payload_bytes", "signed_by", "probe_max_abs_err",
                               "reason", "ranks", "quant", "accuracy", "eval_s", "apply_s"]
    assert evaluated["accuracy"] == 0.75 and evaluated["eval_s"] == 0.25
