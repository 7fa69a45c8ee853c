"""Sweeps, fine-tunes and real-environment training on Ray: a local 2-CPU cluster of two nodes, one of them offering
a `pluto` resource, started by the tests themselves (no external service). The same seeds give the same numbers as
here, in this process; a failed job is reported and run again; a sweep resumes after its driver is killed."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed")

from airlora.cli import main  # noqa: E402
from policy.executor import ClusterError, RayExecutor, Resources, map_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_bad_cluster_arguments_are_refused_in_one_line(synth_file, tmp_path, capsys):
    """First in the file: no Ray is running yet in this process, so --ray really tries to connect."""
    cases = [(["--ray", "not an address"], "expected auto or HOST:PORT"),
             (["--ray", "127.0.0.1:1"], "no Ray head answers at 127.0.0.1:1"),
             (["--ray", "--task-resources", "pluto=lots"], "expected NAME=N pairs"),
             (["--task-resources", "pluto=1"], "add --ray"),
             (["--ray", "--workers", "2"], "--workers is for local processes")]
    for extra, message in cases:
        assert main(_sweep_args(synth_file, tmp_path, "--policies", "fixed:8", "--seeds", "1", *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of 1 CPU on this machine; the second one offers {"pluto": 1}, as an SDR host would."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import a test module
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    radio_node = c.add_node(num_cpus=1, resources={"pluto": 1})
    ray.init(address=c.address, log_to_driver=False, logging_level=logging.ERROR)
    c.wait_for_nodes()
    yield c, radio_node.node_id
    ray.shutdown()
    c.shutdown()


def _node_id(_i: int) -> str:
    return ray.get_runtime_context().get_node_id()


def _die_once(marker: str, i: int) -> int:
    """Kills its own worker process the first time it runs (a crashed worker), then returns i."""
    if i == 1 and not os.path.exists(marker):
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return i * 10


def test_jobs_that_need_a_radio_land_on_the_node_that_has_one(cluster):
    _, radio_node = cluster
    executor = RayExecutor()
    assert "2 node(s), 2 CPUs" in executor.describe() and "pluto 1" in executor.describe()
    placed = dict(map_jobs(executor, _node_id, [(i,) for i in range(6)], Resources(custom={"pluto": 1})))
    assert len(placed) == 6 and set(placed.values()) == {radio_node}
    with pytest.raises(ClusterError, match="no node of the Ray cluster offers sdr 1"):
        list(map_jobs(executor, _node_id, [(0,)], Resources(custom={"sdr": 1})))
    with pytest.raises(ClusterError, match="offers CPU 2"):  # 2 CPUs in the cluster, but no node has 2
        list(map_jobs(executor, _node_id, [(0,)], Resources(cpus=2)))


def test_a_killed_worker_is_reported_and_its_job_run_again(cluster, tmp_path):
    failures = []
    executor = RayExecutor()
    results = dict(map_jobs(executor, _die_once, [(str(tmp_path / "marker"), i) for i in range(4)],
                            on_failure=lambda i, exc, attempt: failures.append((i, type(exc).__name__, attempt))))
    assert results == {0: 0, 1: 10, 2: 20, 3: 30}
    assert failures == [(1, "WorkerCrashedError", 1)]


def _sweep_args(synth_file, tmp_path, *extra):
    return ["sweep", "--set", f"policy.surrogate_data={synth_file}", "--set", f"policy.out_dir={tmp_path / 'runs'}",
            "--json", *extra]


def test_a_sweep_on_ray_or_local_workers_gives_the_cells_it_gives_here(cluster, cfg, synth_file, tmp_path, capsys):
    from policy.checkpoint import save
    from policy.env import make_env
    from policy.training import make_learner

    small = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"hidden": 32})})
    ckpt = save(make_learner("airllm", small, make_env(small, "surrogate").problem, 3), tmp_path / "airllm.pt")
    sweep = ["--policies", f"fixed:8,heuristic,random,adalora,airllm:{ckpt}", "--snr-db", "-5,10", "--seeds", "2"]
    assert main(_sweep_args(synth_file, tmp_path, *sweep)) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(_sweep_args(synth_file, tmp_path, *sweep, "--ray", "--task-resources", "pluto=1")) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert main(_sweep_args(synth_file, tmp_path, *sweep, "--workers", "2")) == 0
    local = json.loads(capsys.readouterr().out)
    assert "Ray cluster: 2 node(s)" in on_ray["ran_on"] and here["ran_on"] == "this process"
    assert local["ran_on"].startswith("2 local processes")
    assert len(here["cells"]) == 5 * 2 * 2 and on_ray["cells"] == here["cells"] == local["cells"]
    assert on_ray["table"] == here["table"]
    folder = Path(on_ray["folder"])
    assert len((folder / "cells.jsonl").read_text().splitlines()) == 20
    for name in ("cells.csv", "table.csv", "summary.json", "sweep.json", "reward_per_snr.png"):
        assert (folder / name).exists()
    # another sweep is not resumed into this folder
    assert main(_sweep_args(synth_file, tmp_path, *sweep, "--resume", str(folder), "--seeds", "3")) == 2
    assert "another sweep (seeds 2 there, 3 now)" in capsys.readouterr().err


def test_a_sweep_resumes_after_its_driver_is_killed(cluster, cfg, synth_file, tmp_path, capsys):
    c, _ = cluster
    sweep = ["--policies", "random,fixed:4", "--snr-db", "-5,0,5,10,15", "--seeds", "120"]  # 1200 cells
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "airlora.cli", *_sweep_args(synth_file, tmp_path, *sweep),
                               "--ray", c.address], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 120
    lines = 0
    while time.monotonic() < deadline and driver.poll() is None:
        found = list(runs.glob("sweep-*/cells.jsonl"))
        lines = len(found[0].read_text().splitlines()) if found else 0
        if lines >= 30:
            break
        time.sleep(0.02)
    assert driver.poll() is None, "the sweep finished (or failed) before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    (folder,) = runs.glob("sweep-*")
    before = len((folder / "cells.jsonl").read_text().splitlines())
    assert 30 <= before < 1200 and not (folder / "summary.json").exists()
    assert main(_sweep_args(synth_file, tmp_path, *sweep, "--resume", "--ray")) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["folder"] == str(folder) and resumed["resumed_cells"] >= before - 1  # a last line may be cut
    assert main(_sweep_args(synth_file, tmp_path, *sweep)) == 0
    assert resumed["cells"] == json.loads(capsys.readouterr().out)["cells"]


def _tiny(tiny_bert, tmp_path):
    return ["--set", f"model.name={tiny_bert}", "--set", "model.cache_dir=/tmp/airlora-test-cache",
            "--set", "data.task=bbc_news", "--set", "data.train_size=64", "--set", "data.val_size=0",
            "--set", "data.test_size=16", "--set", "policy.real_steps=2", "--set", "policy.real_train_subset=32",
            "--set", "policy.real_eval_size=16", "--set", "policy.episode_steps=3",
            "--set", f"policy.out_dir={tmp_path / 'runs'}", "--set", "policy.hidden=16"]


def test_real_finetunes_and_real_env_training_on_ray_match_here(cluster, tiny_bert, tmp_path, capsys):
    tiny = _tiny(tiny_bert, tmp_path)
    for where, extra in (("here", []), ("ray", ["--ray"])):
        data = tmp_path / f"ft-{where}.json"
        assert main(["train-policy", "--collect-finetunes", "3", "--json", *tiny,
                     "--set", f"policy.surrogate_data={data}", *extra]) == 0
    runs = {w: json.loads((tmp_path / f"ft-{w}.json").read_text())["runs"] for w in ("here", "ray")}
    assert [r["method"] for r in runs["here"]] == ["lora", "lora", "lora", "adalora:2", "adalora:4", "adalora:8"]
    assert [(r["ranks"], r["loss"], r["accuracy"]) for r in runs["ray"]] == \
        [(r["ranks"], r["loss"], r["accuracy"]) for r in runs["here"]]
    capsys.readouterr()

    summaries = {}
    for where, extra in (("here", []), ("ray", ["--ray"])):
        assert main(["train-policy", "--env", "real", "--algos", "ppo", "--episodes", "2", "--num-envs", "2",
                     "--json", *tiny, "--set", f"policy.checkpoint={tmp_path / where / 'airllm.pt'}", *extra]) == 0
        summaries[where] = json.loads(capsys.readouterr().out)
    curve = {w: s["learners"]["ppo"]["per_seed"][0] for w, s in summaries.items()}
    assert curve["ray"]["final_reward"] == curve["here"]["final_reward"]
    assert curve["ray"]["env_steps"] == curve["here"]["env_steps"] == 2 * 3
    assert (tmp_path / "ray" / "ppo.pt").exists()
