"""scripts/security_cases.py, the figures of docs/security.md: every case it tries holds (issue 11)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "security_cases.py"


def test_every_security_case_holds() -> None:
    spec = importlib.util.spec_from_file_location("security_cases", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    results = module.run_cases()
    failed = [f"{r['category']}: {r['name']}: {r['why']}" for r in results if not r["held"]]
    assert not failed, "\n".join(failed)
    assert {r["category"] for r in results} == set(module.CATEGORIES) and len(results) >= 100
    assert module.table(results).splitlines()[-1] == f"| all | {len(results)} | {len(results)} |"
