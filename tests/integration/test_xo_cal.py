"""`airlora xo-cal` on the emulated Pluto pair (issue 17, design link_v2 section 9): real processes (the command,
the local edge it starts), the real control plane and IQ cable; the residual is measured afterwards by a fresh
sounding (`xo-cal --check`) with the written radio.pluto.xo_correction_hz applied when the host's device opens.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from radio.oscillator import pair_ppm
from test_closed_loop_faults import ROOT, free_port

LO_HZ = 915.0e6


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from ml.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("xo") / "tiny-bert", "bert")


def xo_cal(config, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airlora.cli", "xo-cal", "--config", str(config), *args],
                          cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=timeout_s)


def config(tmp_path, model, emulated_ppm: float | None, seed: int) -> dict:
    return {
        "model": {"name": str(model), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "radio": {"backend": "pluto", "frame": "v2", "zmq": {"endpoint": f"tcp://127.0.0.1:{free_port()}"},
                  "pluto": {"emulated_ppm": emulated_ppm, "lo_hz": LO_HZ}},
        "channel": {"seed": seed, "snr_db": 20.0},
        "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": 0.2,
                    "curve": {"keys_dir": str(tmp_path / "keys")}},
        "edge": {"adapter_dir": str(tmp_path / "edge")},
        "run": {"out_dir": str(tmp_path / "runs"), "burst_report_timeout_s": 5.0},
    }


@pytest.mark.parametrize("emulated_ppm, seed", [(20.0, 5), (None, 1), (None, 4)])
def test_xo_cal_trims_the_emulated_pair_to_half_a_ppm(tmp_path, tiny_model, emulated_ppm, seed) -> None:
    host_ppm, edge_ppm = pair_ppm(emulated_ppm, seed)
    raw = config(tmp_path, tiny_model, emulated_ppm, seed)
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(raw))
    t0 = time.monotonic()
    out = xo_cal(path, "--out", str(path))
    cal_s = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    print(f"ppm {emulated_ppm} seed {seed}: host {host_ppm:+.2f}, edge {edge_ppm:+.2f} ppm; {cal_s:.1f} s",
          *lines, sep="\n")
    *iterations, final = lines
    assert 2 <= len(iterations) <= 4 and all(re.match(fr"iteration {i + 1}: CFO ", s) for i, s in enumerate(iterations))
    first = float(re.search(r"= ([-+0-9.]+) ppm", iterations[0]).group(1))
    assert first == pytest.approx(host_ppm - edge_ppm, abs=0.3)  # the edge sees the pair's relative error
    assert final.startswith("radio.pluto.xo_correction_hz: ") and f"written to {path}" in final
    written = yaml.safe_load(path.read_text())
    xo = written["radio"]["pluto"]["xo_correction_hz"]
    assert written["channel"] == raw["channel"]  # the rest of the file is kept
    # the host's crystal is (host - edge) ppm fast against the edge's: telling its driver that frequency cancels it
    assert xo == pytest.approx(40e6 * (1 + (host_ppm - edge_ppm) * 1e-6), abs=40e6 * 0.5e-6)

    t0 = time.monotonic()
    check = xo_cal(path, "--check")  # a fresh sounding: the host's device opens with the written correction
    assert check.returncode == 0, check.stdout + check.stderr[-3000:]
    residual = float(re.search(r"residual ([-+0-9.]+) ppm", check.stdout).group(1))
    print(check.stdout.strip(), f"({time.monotonic() - t0:.1f} s)", sep="\n")
    assert abs(residual) < 0.5 and f"at xo_correction {xo} Hz" in check.stdout


def test_check_without_a_correction_reports_the_offset_and_fails(tmp_path, tiny_model) -> None:
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, tiny_model, 20.0, 5)))
    check = xo_cal(path, "--check", "--bursts", "5")
    assert check.returncode == 1, check.stderr[-3000:]
    assert "NOT within 0.5 ppm" in check.stdout and "of 915 MHz" in check.stdout


def test_xo_cal_refuses_a_backend_without_an_oscillator_to_trim(tmp_path) -> None:
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump({"radio": {"backend": "zmq"}}))
    out = xo_cal(path, timeout_s=60.0)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "xo_correction is a Pluto's" in out.stderr
