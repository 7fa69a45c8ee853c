"""`airlora sweep` as jobs: the cells of a sweep run on an executor (this process, local processes, a Ray cluster)
and land in its results folder as they finish, so a sweep that crashed resumes where it stopped.

On the surrogate every (policy, SNR, seed) cell is a job. On the real environment the work is the fine-tunes:
the sweep plans the ones its cells need (cells that share a rank vector and data batch share one), runs each as a
job (a GPU when the cluster has one), then scores the cells here from them. Files in the folder: sweep.json (what
is swept, to refuse resuming another sweep), cells.jsonl (one finished cell a line), finetunes.jsonl (real env:
one finished fine-tune a line).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policy.base import Policy
from policy.executor import Executor, Resources, map_jobs, one_line
from policy.rank_env import RankEnv
from policy.sweep import build_policies, cell_keys, run_cell
from testbed.errors import AirLoraError
from testbed.progress import progress

if TYPE_CHECKING:
    from testbed.config import TestbedConfig
    from testbed.results import RunFolder

CELLS, FINETUNES, SPEC = "cells.jsonl", "finetunes.jsonl", "sweep.json"


@dataclass
class SweepResult:
    """A finished sweep: its cells in table order, the environment and policies, and what happened on the way."""

    cells: list[dict[str, Any]]
    env: RankEnv
    policies: dict[str, Policy]
    folder: RunFolder
    resumed: int = 0  # cells found finished in the folder
    finetunes: int = 0  # real fine-tunes run by this invocation
    failures: list[dict[str, Any]] = field(default_factory=list)  # failed attempts (each was retried)


def sweep_spec(cfg: TestbedConfig, env_kind: str, specs: list[str], snrs_db: list[float], seeds: int) -> dict[str, Any]:
    """What a sweep computes: a resumed sweep must match it (the config is compared by its digest)."""
    digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]
    return {"env": env_kind, "policies": list(specs), "snr_db": [float(s) for s in snrs_db], "seeds": seeds,
            "config_sha256": digest}


def latest_sweep(out_dir: str | Path) -> Path:
    """The newest sweep folder under `out_dir` (the one `--resume` without a folder continues)."""
    folders = [p for p in Path(out_dir).glob("sweep-*") if (p / SPEC).exists()]
    if not folders:
        raise AirLoraError(f"--resume: no sweep folder with {SPEC} under {out_dir}")
    return max(folders, key=lambda p: (p / SPEC).stat().st_mtime)


def check_resume(folder: RunFolder, spec: dict[str, Any]) -> None:
    """Refuse, in one line, to resume a folder that swept something else."""
    there = json.loads((folder.path / SPEC).read_text())
    differs = [k for k in spec if there.get(k) != spec[k]]
    if differs:
        k = differs[0]
        what = "the config differs" if k == "config_sha256" else f"{k} {there.get(k)} there, {spec[k]} now"
        raise AirLoraError(f"--resume {folder.path}: another sweep ({what}); start a new one without --resume")


def run_sweep_jobs(cfg: TestbedConfig, env_kind: str, specs: list[str], snrs_db: list[float], seeds: int,
                   executor: Executor, resources: Resources = Resources(), finetune_resources: Resources | None = None,
                   resume: Path | None = None, say: Callable[[str], None] | None = None) -> SweepResult:
    """Every cell of the sweep, as jobs of `executor` asking for `resources` (real env: the fine-tunes are the jobs,
    asking for `finetune_resources`), each written to a new results folder under policy.out_dir as it finishes;
    with `resume` (a sweep's folder), cells and fine-tunes that folder holds are not run again. The numbers do not
    depend on the executor."""
    from datetime import datetime, timezone

    from policy.env import make_env
    from testbed.results import RunFolder

    say = say or (lambda _s: None)
    spec = sweep_spec(cfg, env_kind, specs, snrs_db, seeds)
    if resume is not None:
        if not (resume / SPEC).exists():
            raise AirLoraError(f"--resume {resume}: not a sweep folder (no {SPEC})")
        folder = RunFolder(resume.parent, resume.name, existing=True)
        check_resume(folder, spec)
    env = make_env(cfg, env_kind, seed=cfg.policy.seed)
    policies = build_policies(specs, env, cfg, seeds)  # a bad spec is refused before a folder is made
    if resume is None:
        folder = RunFolder(cfg.policy.out_dir, f"sweep-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}")
        folder.write_json(SPEC, spec)
    keys = cell_keys(policies, snrs_db, seeds)
    wanted = set(keys)
    done = {(c["policy"], float(c["snr_db"]), int(c["seed"])): c for c in folder.read_lines(CELLS)} if resume else {}
    done = {k: c for k, c in done.items() if k in wanted}
    todo = [k for k in keys if k not in done]
    result = SweepResult([], env, policies, folder, resumed=len(done))
    if done:
        say(f"resuming {folder.path}: {len(done)} of {len(keys)} cells finished, {len(todo)} to run")

    def failed(what: str, name: Callable[[Any], str]) -> Callable[[Any, BaseException, int], None]:
        def report(job: Any, exc: BaseException, attempt: int) -> None:
            entry = {"job": what, "which": name(job), "attempt": attempt, "error": one_line(exc)}
            result.failures.append(entry)
            folder.event("job_failed", **entry)
            say(f"{what} {entry['which']} failed (attempt {attempt}): {entry['error']}; running it again")
        return report

    def finished(cell: dict[str, Any]) -> None:
        done[(cell["policy"], cell["snr_db"], cell["seed"])] = cell
        folder.append(CELLS, cell)

    noise = cfg.policy.snr_noise_db
    if env_kind == "real":
        from policy.real_env import RealEnv, key_from_json, key_to_json

        assert isinstance(env, RealEnv)
        if resume:
            env.cache.update(key_from_json(r) for r in folder.read_lines(FINETUNES))
        needed = env.plan(lambda: [run_cell(env, policies[n], n, snr, seed, noise) for n, snr, seed in todo])
        result.finetunes = env.prefetch(needed, executor, finetune_resources or resources,
                                        on_result=lambda k, v: folder.append(FINETUNES, key_to_json(k, v)),
                                        on_failure=failed("fine-tune", repr))
        if result.finetunes:
            say(f"real env: {result.finetunes} fine-tunes on {executor.describe()}")
        for name, snr, seed in todo:
            finished(run_cell(env, policies[name], name, snr, seed, noise))
    else:
        env_arg = executor.share(env)
        policy_args = {name: executor.share(p) for name, p in policies.items()}
        jobs = [(env_arg, policy_args[name], name, snr, seed, noise) for name, snr, seed in todo]
        bar = progress(len(jobs), "sweep", unit="cell")
        for _, cell in map_jobs(executor, surrogate_cell, jobs, resources,
                                on_failure=failed("cell", lambda i: "{} at {:g} dB seed {}".format(*todo[i]))):
            finished(cell)
            bar.update()
        bar.close()
    result.cells = [done[k] for k in keys]
    return result


def surrogate_cell(env: RankEnv, policy: Policy, name: str, snr: float, seed: int,
                   snr_noise_db: float) -> dict[str, Any]:
    """`run_cell` as a job: one torch thread whatever the job's CPUs (the policies' networks are small: more threads
    only fight over tiny ops, and on a busy machine they make a cell ten times slower)."""
    import torch

    torch.set_num_threads(1)
    return run_cell(env, policy, name, snr, seed, snr_noise_db)
