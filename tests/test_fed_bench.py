"""scripts/fed_bench.py's accuracy interval: the Wilson score interval, checked against textbook values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fed_bench.py"
_spec = importlib.util.spec_from_file_location("fed_bench", _SCRIPT)
fed_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fed_bench)


@pytest.mark.parametrize("accuracy, n, interval", [
    (0.5, 100, (0.4038, 0.5962)),  # 50 of 100
    (0.0, 10, (0.0, 0.2775)),  # none of 10: the interval still has width, unlike the normal approximation
    (0.776, 500, (0.7374, 0.8104)),  # the README's heterogeneous-rank figure
])
def test_wilson_interval(accuracy: float, n: int, interval: tuple[float, float]) -> None:
    assert fed_bench.wilson(accuracy, n) == pytest.approx(interval, abs=1e-4)
