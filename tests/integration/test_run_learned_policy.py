"""`airlora run` end to end with a trained-policy checkpoint (the hierarchical AirLLM policy) as run.policy:
the policy's input is the SNR the edge measured on the round's sounding, never the SNR the channel was set to.

A random-init tiny BERT keeps it short; the edge is a real second process, IQ goes over the zmq cable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_airlora_run_feeds_the_edges_measured_snr_to_a_learned_policy(tmp_path):
    from ml.data import load_task
    from ml.models import projection_shapes
    from ml.features import batch_features, vocabulary
    from ml.tiny import make_tiny_model
    from policy.airllm import AirLlm, AirLlmConfig
    from policy.checkpoint import save
    from policy.ddim import DdimConfig
    from policy.learned import LearnedPolicy
    from policy.ppo import PpoConfig
    from policy.problem import problem_from_config
    from policy.state import PolicyState
    from testbed.config import validate

    torch.set_num_threads(1)
    model = make_tiny_model(tmp_path / "tiny-bert", "bert")
    ckpt = tmp_path / "policy" / "airllm.pt"
    raw = {
        "model": {"name": str(model), "max_length": 32, "cache_dir": str(tmp_path / "cache")},
        "data": {"task": "bbc_news", "train_size": 16, "val_size": 8, "test_size": 10, "probe_count": 2},
        "finetune": {"steps": 1, "batch_size": 8, "lr": 5e-3, "quant": "int8"},
        "radio": {"backend": "zmq", "zmq": {"endpoint": f"tcp://127.0.0.1:{free_port()}"}},
        "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": 0.2,
                    "curve": {"keys_dir": str(tmp_path / "keys")}},  # the signing key is made there on first use
        "edge": {"adapter_dir": str(tmp_path / "edge")},
        "run": {"rounds": 2, "snr_db_rounds": [18.0, 4.0], "policy": f"airllm:{ckpt}", "steps": 1,
                "out_dir": str(tmp_path / "runs")},
    }
    cfg = validate(raw)
    splits = load_task(cfg.data)
    modules, shapes = projection_shapes(cfg.model, cfg.finetune.target_modules, splits.num_labels)
    problem = problem_from_config(cfg, modules, shapes)
    learner = AirLlm(problem, PpoConfig(hidden=32, actor_out_gain=1.0), DdimConfig(hidden=32, blocks=1),
                     AirLlmConfig(candidates=4), seed=3)
    save(learner, ckpt)
    config_file = tmp_path / "testbed.yaml"
    config_file.write_text(yaml.safe_dump(raw))

    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "airlora.cli", "run", "--config", str(config_file), "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    folder = Path(summary["run_dir"])
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    chosen = [e for e in events if e["event"] == "ranks"]
    assert len(chosen) == 2 and all(r["delivered"] for r in summary["rounds"])

    # what the policy saw is the edge's measurement: near the set SNR, never equal to it
    features = batch_features([t for t, _ in splits.val], vocabulary(t for t, _ in splits.train))
    policy = LearnedPolicy(ckpt)
    current: dict[str, int] = {}  # the state carries the ranks now installed (none before the first round)
    for event, snr_set in zip(chosen, (18.0, 4.0)):
        measured = event["snr_db"]
        assert measured is not None and measured != snr_set and abs(measured - snr_set) < 2.0
        state = PolicyState(snr_db=measured, bandwidth_hz=problem.link.occupied_bandwidth_hz,
                            entropy=features["lexical_entropy"], oov_rate=features["oov_rate"], modules=modules,
                            shapes=shapes, ranks=current, r_max=cfg.run.r_max)
        assert event["ranks"] == policy.choose(state)  # rank i of projection i, as the checkpoint decides
        current = event["ranks"]
