"""`airlora fed` over real Plutos: the host's device (--pluto-uri) broadcasts and receives both uplinks, each local
edge process has its own device (fleet.local_pluto_uris). Three devices on one machine, over the air or cabled
through a splitter and attenuators.

Run with: AIRLORA_FED_EDGE_PLUTO_URIS=usb:1.3.5,usb:1.4.5 python -m pytest -s tests/hardware/test_fed_hardware.py \
--pluto-uri usb:1.2.5 (AIRLORA_PLUTO_LO_HZ and AIRLORA_PLUTO_TX_ATTENUATION_DB change the defaults).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.hardware, pytest.mark.slow]


def test_airlora_fed_over_real_plutos(tmp_path, tiny_bert, pluto_uri):
    edge_uris = [u for u in os.environ.get("AIRLORA_FED_EDGE_PLUTO_URIS", "").split(",") if u]
    if len(edge_uris) < 2:
        pytest.skip("needs AIRLORA_FED_EDGE_PLUTO_URIS with two edge Pluto URIs (the host's is --pluto-uri)")
    pluto = {"uri": pluto_uri, "lo_hz": float(os.environ.get("AIRLORA_PLUTO_LO_HZ", 915e6)),
             "tx_attenuation_db": float(os.environ.get("AIRLORA_PLUTO_TX_ATTENUATION_DB", 10.0))}
    raw = {
        "model": {"name": str(tiny_bert), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 32, "val_size": 8, "test_size": 20, "probe_count": 2},
        "finetune": {"batch_size": 8, "lr": 5e-3, "quant": "int8"},
        "radio": {"backend": "pluto", "pluto": pluto},
        "control": {"curve": {"keys_dir": str(tmp_path / "keys")}, "peer_timeout_s": 30.0},
        "edge": {"adapter_dir": str(tmp_path / "edge"), "trusted_keys_dir": str(tmp_path / "keys" / "trusted")},
        "run": {"out_dir": str(tmp_path / "runs")},
        "fleet": {"local_pluto_uris": edge_uris[:2]},
        "fed": {"rounds": 1, "edges": 2, "local_steps": 5, "eval_examples": 10, "policy": "fixed:2"},
    }
    config_file = tmp_path / "testbed.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "airlora.cli", "fed", "--config", str(config_file), "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    folder = Path(json.loads(out.stdout.strip().splitlines()[-1])["run_dir"])
    (row,) = list(csv.DictReader((folder / "rounds.csv").open()))
    assert row["edges_included"] == row["edges_installed"] == "2"
    for e in csv.DictReader((folder / "edges.csv").open()):
        assert e["included"] == "True" and float(e["snr_db_uplink"]) > 0, e
        print(f"{e['edge']}: uplink SNR {float(e['snr_db_uplink']):.1f} dB at {e['uplink_mcs']}")
