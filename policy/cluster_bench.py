"""`airlora bench cluster`: the wall time of a surrogate sweep's cells and of a real sweep's fine-tunes run as jobs
with 1, 2, ... workers, on local processes and on a local Ray, and the speed-up over one worker.

Each worker count w gets cores // w CPUs per job (on Ray: each job asks for that many, so w run at once). A real
fine-tune uses them as torch threads, so one worker uses the whole machine too and the speed-up is what running
fine-tunes side by side adds over threads inside one; a surrogate cell runs on one thread (its networks are small),
so there the speed-up is that of the cells alone. Workers are started and warmed up before the clock starts
(their start-up time is reported apart; the surrogate's cells are run once untimed first). Every configuration should give the same
numbers; the report says whether it did (a real fine-tune's last digits may depend on its thread count).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policy.executor import Executor, LocalExecutor, RayExecutor, Resources, map_jobs

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

SURROGATE_POLICIES = ("fixed:8", "heuristic", "random", "adalora", "ppo", "airllm")
REAL_POLICIES = ("fixed:4", "fixed:8", "heuristic", "random", "adalora")


def _warm(seconds: float) -> int:
    """A warm-up job: imports what the timed jobs import, then holds its worker a moment (so all of them start)."""
    import torch  # noqa: F401

    import policy.real_env  # noqa: F401
    import policy.sweep  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def _executors(backend: str, workers: int, cores: int, ray: RayExecutor | None) -> tuple[Executor, Resources]:
    """The executor and per-job resources of one configuration: w jobs at once, cores // w threads each."""
    threads = max(1, cores // workers)
    if backend == "local":
        return LocalExecutor(workers), Resources(cpus=threads)
    assert ray is not None
    return ray, Resources(cpus=threads)


def _timed(executor: Executor, resources: Resources, fn: Callable[..., Any], jobs: list[tuple],
           workers: int, warm_pass: bool) -> tuple[dict[int, Any], float, float]:
    """(results by index, start-up seconds, seconds of the jobs); `warm_pass` runs the jobs once untimed first
    (cheap jobs: a worker's first one pays for imports and unpickling policies)."""
    t0 = time.perf_counter()
    list(map_jobs(executor, _warm, [(1.0,)] * workers, resources))
    startup = time.perf_counter() - t0 - 1.0
    if warm_pass:
        list(map_jobs(executor, fn, jobs, resources))
    t1 = time.perf_counter()
    out = dict(map_jobs(executor, fn, jobs, resources))
    return out, max(0.0, startup), time.perf_counter() - t1


def bench_cluster(cfg: TestbedConfig, backends: list[str], workers: list[int], sweep_seeds: int, finetunes: int,
                  snrs_db: list[float], say: Callable[[str], None] = print) -> dict[str, Any]:
    """Time the surrogate sweep (policies x SNRs x `sweep_seeds` cells) and `finetunes` fine-tunes of a real sweep
    on each backend at each worker count; speed-ups against the first worker count."""
    import torch

    from policy.checkpoint import save
    from policy.env import make_env
    from policy.sweep import build_policies, cell_keys
    from policy.sweep_jobs import surrogate_cell
    from policy.training import make_learner

    cores = os.cpu_count() or 1
    report: dict[str, Any] = {"cores": cores, "workers": workers, "backends": backends, "surrogate": {}, "real": {},
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    ray = RayExecutor(num_cpus=cores) if "ray" in backends else None
    try:
        torch.set_num_threads(1)
        env = make_env(cfg, "surrogate", seed=cfg.policy.seed)
        with tempfile.TemporaryDirectory(prefix="airlora-bench-") as tmp:
            specs = []
            for spec in SURROGATE_POLICIES:  # learned policies: untrained checkpoints (a choice costs the same)
                if spec in ("ppo", "airllm"):
                    path = save(make_learner(spec, cfg, env.problem, 0), Path(tmp) / f"{spec}.pt")
                    spec = f"{spec}:{path}"
                specs.append(spec)
            policies = build_policies(specs, env, cfg, 1)  # loaded here: the files can go
        keys = cell_keys(policies, snrs_db, sweep_seeds)
        report["surrogate"] = {"cells": len(keys), "policies": list(SURROGATE_POLICIES), "runs": []}
        reference = None
        for backend in backends:
            for w in workers:
                executor, res = _executors(backend, w, cores, ray)
                jobs = [(executor.share(env), executor.share(policies[n]), n, snr, seed, cfg.policy.snr_noise_db)
                        for n, snr, seed in keys]
                out, startup, wall = _timed(executor, res, surrogate_cell, jobs, w, warm_pass=True)
                if executor is not ray:
                    executor.close()
                cells = [out[i] for i in range(len(keys))]
                reference = reference or cells
                run = {"backend": backend, "workers": w, "threads": 1, "startup_s": round(startup, 2),
                       "wall_s": round(wall, 3), "same_numbers": cells == reference}
                report["surrogate"]["runs"].append(run)
                say(f"surrogate sweep, {backend}, {w} worker(s): {wall:.2f} s for {len(keys)} cells")
        if finetunes:
            report["real"] = _bench_real(cfg, backends, workers, finetunes, snrs_db, cores, ray, say)
    finally:
        if ray is not None:
            ray.close()
    for part in ("surrogate", "real"):
        for backend in backends:
            runs = [r for r in report[part].get("runs", []) if r["backend"] == backend]
            for r in runs:
                r["speedup"] = round(runs[0]["wall_s"] / r["wall_s"], 2) if r["wall_s"] > 0 else None
    return report


def _bench_real(cfg: TestbedConfig, backends: list[str], workers: list[int], finetunes: int, snrs_db: list[float],
                cores: int, ray: RayExecutor | None, say: Callable[[str], None]) -> dict[str, Any]:
    """The first `finetunes` fine-tunes a real sweep of the baselines plans, run on each configuration."""
    from policy.env import make_env
    from policy.real_env import RealEnv, _finetune_job
    from policy.sweep import build_policies, cell_keys, run_cell

    env = make_env(cfg, "real", seed=cfg.policy.seed)
    assert isinstance(env, RealEnv)
    policies = build_policies(list(REAL_POLICIES), env, cfg, 3)
    keys = cell_keys(policies, snrs_db, 3)
    planned = env.plan(lambda: [run_cell(env, policies[n], n, s, k, cfg.policy.snr_noise_db) for n, s, k in keys])
    chosen = sorted(planned, key=repr)[:finetunes]
    out: dict[str, Any] = {"finetunes": len(chosen), "planned": len(planned), "model": cfg.model.name,
                           "steps": cfg.policy.real_steps, "runs": []}
    reference = None
    for backend in backends:
        for w in workers:
            executor, res = _executors(backend, w, cores, ray)
            results, startup, wall = _timed(executor, res, _finetune_job, [(cfg, k) for k in chosen], w,
                                           warm_pass=False)
            if executor is not ray:
                executor.close()
            values = [results[i] for i in range(len(chosen))]
            reference = reference or values
            out["runs"].append({"backend": backend, "workers": w, "threads": res.threads(),
                                "startup_s": round(startup, 2), "wall_s": round(wall, 2),
                                "same_numbers": values == reference})
            say(f"real sweep fine-tunes, {backend}, {w} worker(s): {wall:.1f} s for {len(chosen)} fine-tunes")
    return out
