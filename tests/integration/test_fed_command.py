"""`airlora fed` end to end as a user runs it (a subprocess, real edge processes, the ZeroMQ IQ cables): two edges,
two rounds on a tiny random-init BERT; the run folder holds rounds.csv, edges.csv, summary.json and both plots, and
their numbers agree with each other and with the channels set."""

from __future__ import annotations

import csv
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


def test_airlora_fed_writes_the_run_folder(tmp_path, tiny_bert):
    raw = {
        "model": {"name": str(tiny_bert), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 32, "val_size": 8, "test_size": 20, "probe_count": 2},
        "finetune": {"batch_size": 8, "lr": 5e-3, "quant": "int8"},
        "radio": {"backend": "zmq"},
        "control": {"curve": {"keys_dir": str(tmp_path / "keys")}, "peer_timeout_s": 30.0},
        "edge": {"adapter_dir": str(tmp_path / "edge"), "trusted_keys_dir": str(tmp_path / "keys" / "trusted")},
        "run": {"out_dir": str(tmp_path / "runs")},
        "fleet": {"local_snr_db": [20.0, 8.0]},
        "fed": {"rounds": 2, "edges": 2, "local_steps": 1, "eval_examples": 10, "policy": "fixed:4"},
    }
    config_file = tmp_path / "testbed.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "airlora.cli", "fed", "--config", str(config_file), "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    folder = Path(summary["run_dir"])
    names = {p.name for p in folder.iterdir()}
    assert {"rounds.csv", "edges.csv", "summary.json", "events.jsonl", "config.yaml", "fed_accuracy.png",
            "fed_airtime.png", "edge-edge-1.log", "edge-edge-2.log"} <= names
    assert all((folder / p).stat().st_size > 1000 for p in ("fed_accuracy.png", "fed_airtime.png"))
    assert json.loads((folder / "summary.json").read_text())["rounds"] == summary["rounds"]
    rounds = list(csv.DictReader((folder / "rounds.csv").open()))
    edges = list(csv.DictReader((folder / "edges.csv").open()))
    assert [int(r["round"]) for r in rounds] == [1, 2] and len(edges) == 4
    for r in rounds:
        assert r["edges_included"] == r["edges_installed"] == "2" and r["aggregation"] == "svd"
        assert 0.0 <= float(r["global_accuracy"]) <= 1.0 and float(r["downlink_airtime_s"]) > 0
        assert int(r["global_payload_bytes"]) > 0 and float(r["catchup_airtime_s"]) == 0.0
    up = [float(e["uplink_airtime_s"]) for e in edges]
    assert float(rounds[-1]["cumulative_uplink_airtime_s"]) == pytest.approx(sum(up))
    for e in edges:
        assert e["included"] == "True" and int(e["samples"]) == 16 and int(e["payload_bytes"]) > 0
        assert abs(float(e["snr_db_uplink"]) - {"edge-1": 20.0, "edge-2": 8.0}[e["edge"]]) < 1.0  # measured
        assert int(e["rank_sum"]) == int(edges[0]["rank_sum"]) and int(e["rank_sum"]) % 4 == 0  # fixed:4 each
    # the faster uplink (20 dB) uses a faster MCS than the 8 dB one, so less airtime for the same adapter
    by = {(e["round"], e["edge"]): e for e in edges}
    assert float(by[("2", "edge-1")]["uplink_airtime_s"]) < float(by[("2", "edge-2")]["uplink_airtime_s"])
