"""`airlora xo-cal` between two real ADALM-PLUTOs on one machine (two processes: an `airlora edge` on one device,
the command on the other), cabled through an attenuator or over the air.

Run with: AIRLORA_PLUTO_EDGE_URI=usb:1.6.5 python -m pytest -s tests/hardware/test_xo_cal_hardware.py \
    --pluto-uri usb:1.5.5
(--pluto-uri is the host's device, AIRLORA_PLUTO_EDGE_URI the edge's; `iio_info -s` lists both). Levels as in
test_pluto_hardware.py: AIRLORA_PLUTO_TX_ATTENUATION_DB, AIRLORA_PLUTO_RX_GAIN_DB, AIRLORA_PLUTO_LO_HZ.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.hardware

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def edge_uri() -> str:
    uri = os.environ.get("AIRLORA_PLUTO_EDGE_URI")
    if not uri:
        pytest.skip("needs AIRLORA_PLUTO_EDGE_URI (the edge's Pluto) besides --pluto-uri (the host's)")
    return uri


def test_xo_cal_trims_the_host_pluto_to_the_edge_s(tmp_path, pluto_uri: str, edge_uri: str) -> None:
    from ml.tiny import make_tiny_model

    lo_hz = float(os.environ.get("AIRLORA_PLUTO_LO_HZ", 915e6))
    pluto = {"lo_hz": lo_hz, "rx_gain_mode": "manual",
             "rx_gain_db": float(os.environ.get("AIRLORA_PLUTO_RX_GAIN_DB", 30.0)),
             "tx_attenuation_db": float(os.environ.get("AIRLORA_PLUTO_TX_ATTENUATION_DB", 10.0))}
    control = f"tcp://127.0.0.1:{free_port()}"
    common = {"model": {"name": str(make_tiny_model(tmp_path / "tiny-bert", "bert")), "max_length": 32,
                        "cache_dir": str(tmp_path / "cache")},
              "control": {"endpoint": control, "bind": control, "curve": {"keys_dir": str(tmp_path / "keys")}},
              "edge": {"adapter_dir": str(tmp_path / "edge")},
              "run": {"edge": "remote", "out_dir": str(tmp_path / "runs"), "burst_report_timeout_s": 5.0}}
    edge_cfg, host_cfg = tmp_path / "edge.yaml", tmp_path / "host.yaml"
    edge_cfg.write_text(yaml.safe_dump({**common, "radio": {"backend": "pluto", "frame": "v2",
                                                            "pluto": {**pluto, "uri": edge_uri}}}))
    host_cfg.write_text(yaml.safe_dump({**common, "radio": {"backend": "pluto", "frame": "v2",
                                                            "pluto": {**pluto, "uri": pluto_uri}}}))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with (tmp_path / "edge.log").open("wb") as log:
        edge = subprocess.Popen([sys.executable, "-m", "airlora.cli", "edge", "--config", str(edge_cfg)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            cal = subprocess.run([sys.executable, "-m", "airlora.cli", "xo-cal", "--config", str(host_cfg),
                                  "--out", str(host_cfg)], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=600)
            print(cal.stdout)
            assert cal.returncode == 0, cal.stdout + cal.stderr[-3000:] + (tmp_path / "edge.log").read_text()[-3000:]
            first = float(re.search(r"= ([-+0-9.]+) ppm", cal.stdout).group(1))
            assert abs(first) < 60.0  # two crystals within +-25 ppm each (and some ageing)
            xo = yaml.safe_load(host_cfg.read_text())["radio"]["pluto"]["xo_correction_hz"]
            check = subprocess.run([sys.executable, "-m", "airlora.cli", "xo-cal", "--config", str(host_cfg),
                                    "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            print(check.stdout)
            assert check.returncode == 0 and f"at xo_correction {xo} Hz" in check.stdout, check.stdout + check.stderr
        finally:
            edge.terminate()
            edge.wait(30)
