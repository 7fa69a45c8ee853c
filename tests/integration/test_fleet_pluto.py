"""`airlora fed` and `airlora run --edges 2` over emulated Plutos, as a user runs them (a subprocess, real edge
processes): the host's one emulated device broadcasts to both edges (and, in fed, receives each edge's uplink);
each edge's device receives the downlink (and transmits its adapter). The air between them is the ZeroMQ IQ cables;
every device has its own crystal (the host's one for both pairs), so each edge's channel carries its pair's CFO and
sample clock offset. Tiny BERT, small fixed ranks: the emulated devices run in real time while idle."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from host.fleet import edge_crystals_ppm, free_port, local_fleet
from testbed.config import validate

ROOT = Path(__file__).resolve().parents[2]
SNR_DB = {"edge-1": 20.0, "edge-2": 8.0}

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, model: Path, **sections: dict) -> dict:
    raw = {
        "model": {"name": str(model), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 32, "val_size": 8, "test_size": 20, "probe_count": 2},
        "finetune": {"batch_size": 8, "lr": 5e-3, "quant": "int8"},
        "radio": {"backend": "pluto"},  # no URI: emulated devices, crystals drawn from the channel seeds
        "channel": {"seed": 7},
        "control": {"curve": {"keys_dir": str(tmp_path / "keys")}, "peer_timeout_s": 30.0},
        "edge": {"adapter_dir": str(tmp_path / "edge"), "trusted_keys_dir": str(tmp_path / "keys" / "trusted")},
        "run": {"out_dir": str(tmp_path / "runs")},
        "fleet": {"local_snr_db": list(SNR_DB.values())},
    }
    for name, keys in sections.items():
        raw[name] = {**raw.get(name, {}), **keys}
    return raw


def _airlora(tmp_path: Path, raw: dict, *args: str) -> dict:
    config_file = tmp_path / "testbed.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "airlora.cli", *args, "--config", str(config_file), "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check_crystals(raw: dict, folder: Path) -> None:
    """Each edge's config carries its pair's relative crystal error: the host's one crystal minus the edge's own."""
    cfg = validate(raw)
    host_ppm, edge_ppm = edge_crystals_ppm(cfg, local_fleet(cfg, 2))
    written = {n: yaml.safe_load((folder / "edges" / f"{n}.yaml").read_text())["radio"]["pluto"] for n in SNR_DB}
    for name, pluto in written.items():
        assert pluto["uri"] is None and pluto["emulated_ppm"] == pytest.approx(host_ppm - edge_ppm[name])
    assert len({round(p["emulated_ppm"], 6) for p in written.values()}) == 2


def test_airlora_fed_over_emulated_plutos(tmp_path, tiny_bert):
    raw = _config(tmp_path, tiny_bert,
                  fed={"rounds": 1, "edges": 2, "local_steps": 5, "eval_examples": 10, "policy": "fixed:2"})
    folder = Path(_airlora(tmp_path, raw, "fed")["run_dir"])
    rounds = list(csv.DictReader((folder / "rounds.csv").open()))
    edges = list(csv.DictReader((folder / "edges.csv").open()))
    assert len(rounds) == 1 and sorted(e["edge"] for e in edges) == sorted(SNR_DB)
    # both uplinks delivered, verified and aggregated; the global adapter installed on both edges
    assert rounds[0]["edges_included"] == rounds[0]["edges_installed"] == "2"
    for e in edges:
        assert e["included"] == "True", e.get("reason")
        assert abs(float(e["snr_db_uplink"]) - SNR_DB[e["edge"]]) < 1.5  # measured by the host's device
        assert e["uplink_mcs"].startswith("ldpc-")  # the edges list uplink:v2: LDPC bursts go up
    events = [json.loads(line) for line in (folder / "events.jsonl").open()]
    sounding = next(e for e in events if e["event"] == "sounding")  # the downlink, measured by each edge's device
    assert all(abs(sounding["snr_db"][n] - SNR_DB[n]) < 1.5 for n in SNR_DB), sounding
    _check_crystals(raw, folder)


def test_airlora_run_broadcasts_to_two_edges_over_emulated_plutos(tmp_path, tiny_bert):
    raw = _config(tmp_path, tiny_bert, finetune={"steps": 1, "ranks": "uniform:8"},
                  control={"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": 0.2},
                  run={"rounds": 1, "policy": "fixed:8", "steps": 1})
    summary = _airlora(tmp_path, raw, "run", "--edges", "2")
    (row,) = summary["rounds"]
    assert row["edges"] == row["edges_installed"] == 2
    for e in summary["edges"]:
        assert e["installed"] and abs(e["snr_db_measured"] - SNR_DB[e["edge"]]) < 1.5, e
    _check_crystals(raw, Path(summary["run_dir"]))
