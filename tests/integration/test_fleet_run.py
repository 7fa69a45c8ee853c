"""`airlora run --edges 3`: three local edge processes, each behind its own emulated channel (20, 8 and 2 dB),
one fountain-coded broadcast per round over the ZeroMQ IQ cables; every edge installs the same signed adapter.

A random-init tiny BERT keeps it short (one fine-tuning step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from host.fleet import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_airlora_run_broadcasts_one_adapter_to_three_edges_at_different_snrs(tmp_path, tiny_bert):
    raw = {
        "model": {"name": str(tiny_bert), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 16, "val_size": 8, "test_size": 10, "probe_count": 2},
        "finetune": {"steps": 1, "batch_size": 8, "lr": 5e-3, "quant": "int8", "ranks": "uniform:8"},
        "radio": {"backend": "zmq", "zmq": {"endpoint": f"tcp://127.0.0.1:{free_port()}"}},
        "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": 0.2,
                    "curve": {"keys_dir": str(tmp_path / "keys")}},
        "edge": {"adapter_dir": str(tmp_path / "edge")},
        "run": {"rounds": 1, "policy": "fixed:8", "steps": 1, "out_dir": str(tmp_path / "runs")},
        "fleet": {"local_snr_db": [20.0, 8.0, 2.0]},
    }
    config_file = tmp_path / "testbed.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "airlora.cli", "run", "--config", str(config_file), "--edges", "3",
                          "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    (row,) = summary["rounds"]
    assert row["edges"] == 3 and row["edges_installed"] == 3 and row["installed"]
    assert row["symbols_sent"] >= row["source_symbols"] > 5
    edges = {e["edge"]: e for e in summary["edges"]}
    assert set(edges) == {"edge-1", "edge-2", "edge-3"}
    for name, snr_set in (("edge-1", 20.0), ("edge-2", 8.0), ("edge-3", 2.0)):
        e = edges[name]
        assert e["installed"] and e["done"] and e["edge_accuracy"] is not None
        assert e["snr_db_set"] == snr_set and abs(e["snr_db_measured"] - snr_set) < 2.0  # each its own channel
        assert e["symbols_needed"] == row["source_symbols"] <= e["symbols_received"]
    # the worst edge sets the MCS (rule "worst"): measured about 2 dB -> a BPSK MCS, never the 20 dB edge's
    assert row["mcs"].startswith("bpsk") and abs(row["snr_db_measured"] - row["snr_db_min"]) < 1e-9
    # every edge installed the same payload: the same version folder in its own adapter directory
    folder = Path(summary["run_dir"])
    versions = {name: os.readlink(Path(f"{tmp_path / 'edge'}-{name}") / "current") for name in edges}
    assert len(set(versions.values())) == 1, versions
    assert (folder / "fleet_progress.png").exists() and (folder / "edges.csv").exists()
    assert sorted(p.name for p in (folder / "edges").iterdir()) == ["edge-1.yaml", "edge-2.yaml", "edge-3.yaml"]
