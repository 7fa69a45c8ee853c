"""Run an edge-like and a host-like Python process against each other and collect the edge's JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def run_pair(edge_code: str, host_code: str, timeout_s: float = 60.0) -> dict:
    """Start the edge (it prints its endpoint first), run the host against it; the edge's last JSON line."""
    edge = subprocess.Popen([sys.executable, "-c", edge_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        endpoint = edge.stdout.readline().strip()
        assert endpoint.startswith("tcp://127.0.0.1:"), endpoint
        host = subprocess.run([sys.executable, "-c", host_code, endpoint], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout_s)
        assert host.returncode == 0, host.stderr
        out, _ = edge.communicate(timeout=timeout_s)
    finally:
        edge.kill()
    assert edge.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def expected_payloads(session: int, packets: int, payload_bytes: int) -> dict[str, str]:
    """What payloads() in the processes' COMMON code sends, as hex by sequence number."""
    rng = np.random.default_rng(session)
    return {str(i): rng.bytes(payload_bytes).hex() for i in range(packets)}
