"""Peak RSS is the process's own (VmHWM), not the parent's memory at the fork (ru_maxrss)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from radio.rss import peak_rss_mb

ROOT = Path(__file__).resolve().parents[2]


def test_a_child_reports_its_own_peak_not_its_large_parents() -> None:
    ballast = np.ones(300 * 2**20 // 8)  # 300 MiB resident in this process
    assert peak_rss_mb() > 300
    script = ("import resource; from radio.rss import peak_rss_mb; "
              "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    own, maxrss = map(float, out.stdout.split())
    assert own < 100  # a bare interpreter and this module
    assert maxrss > 300  # what the benchmarks used to read: the parent's size at the fork
    del ballast
