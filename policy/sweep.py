"""Run rank policies at fixed channel SNRs on one environment and compare them cell by cell."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from policy.base import Policy
from policy.learned import AdaLoraPolicy, LearnedPolicy
from policy.problem import Problem
from policy.rank_env import RankEnv
from policy.registry import make_policy
from policy.state import PolicyState
from testbed.stats import mean_ci
from testbed.progress import progress

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

BASELINES = ("fixed", "heuristic", "random", "adalora", "ppo")  # vanilla PPO is a baseline too


class PerSeed(Policy):
    """A learned policy trained with several seeds: sweep seed k uses the k-th seed's checkpoint (cycling)."""

    def __init__(self, name: str, policies: list[Policy]) -> None:
        self.name, self.policies = name, policies

    def for_seed(self, seed: int) -> Policy:
        """The policy trained with seed `seed` (cycling when fewer were trained)."""
        return self.policies[seed % len(self.policies)]

    def choose(self, state: PolicyState) -> dict[str, int]:
        return self.policies[0].choose(state)


class Airtime:
    """The airtime of a rank choice at an SNR on a problem: the heuristic's cost (a class, so that a policy holding
    it can be sent to a worker)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem

    def __call__(self, ranks: dict[str, int], snr_db: float) -> float:
        p = self.problem
        return p.airtime_s(p.payload_bytes([ranks.get(m, 0) for m in p.modules]), snr_db)


def build_policies(specs: list[str], env: RankEnv, cfg: TestbedConfig, seeds: int = 1) -> dict[str, Policy]:
    """Policies by spec; `ppo` / `airllm` without a path load the checkpoints train-policy wrote (with a path: that
    checkpoint), one per training seed when `train-policy --seeds` wrote several (up to `seeds` of them)."""
    from pathlib import Path

    from policy.checkpoint import seeded_path

    ckpt = Path(cfg.policy.checkpoint)
    cost = Airtime(env.problem)
    out = {}
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind in ("ppo", "airllm"):
            base = Path(arg) if arg else ckpt if kind == "airllm" else ckpt.with_name("ppo.pt")
            paths = [base] + [q for q in (seeded_path(base, k) for k in range(1, seeds)) if q.exists()]
            out[spec] = PerSeed(spec if arg else kind, [LearnedPolicy(q) for q in paths])
        else:
            out[spec] = make_policy(spec, cost=cost, candidates=tuple(cfg.run.rank_candidates),
                                    adalora_target_rank=cfg.finetune.adalora_target_rank)
    return out


def cell_keys(policies: dict[str, Policy] | list[str], snrs_db: list[float],
              seeds: int) -> list[tuple[str, float, int]]:
    """Every (policy, SNR, seed) cell of a sweep, in the order of its table."""
    return [(name, float(snr), seed) for name in policies for snr in snrs_db for seed in range(seeds)]


def run_cell(env: RankEnv, policy: Policy, name: str, snr: float, seed: int, snr_noise_db: float) -> dict[str, Any]:
    """One cell: the policy sees the SNR as the edge would measure it (noise seeded by the cell) and the features
    of data batch seed % batches; the environment says what its rank vector achieves."""
    p = env.problem
    rng = np.random.default_rng([seed, int(round(snr * 10)) + 1000])
    measured = float(snr + rng.normal(0.0, snr_noise_db))
    data = seed % len(env.data_features)
    entropy, oov = env.data_features[data]
    state = PolicyState(snr_db=measured, bandwidth_hz=p.link.occupied_bandwidth_hz, entropy=entropy,
                        oov_rate=oov, modules=list(p.modules), shapes=dict(p.shapes), r_max=p.r_max,
                        deadline_s=p.deadline_s)
    if isinstance(policy, AdaLoraPolicy):
        out = env.adalora(policy.adalora_target_rank, measured, data)
    else:
        chooser = policy.for_seed(seed) if isinstance(policy, PerSeed) else policy
        chosen = chooser.choose(state)
        out = env.outcome([int(chosen.get(m, 0)) for m in p.modules], measured, data)
    return {"policy": name, "snr_db": float(snr), "seed": seed, "snr_db_measured": measured,
            "accuracy": float(out.accuracy), "loss": float(out.loss), "payload_bytes": int(out.payload_bytes),
            "airtime_s": float(out.airtime_s), "reward": float(out.reward),
            "missed_deadline": bool(out.missed_deadline), "rank_sum": int(sum(out.ranks)),
            "ranks": [int(r) for r in out.ranks]}


def run_sweep(env: RankEnv, policies: dict[str, Policy], snrs_db: list[float], seeds: int, snr_noise_db: float,
              say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every cell (`run_cell`) here, one after another. A bar counts the cells when the command line turned bars
    on. (policy.sweep_jobs runs them as jobs, resumably.)"""
    cells = []
    bar = progress(len(policies) * len(snrs_db) * seeds, "sweep", unit="cell")
    for name, policy in policies.items():
        for snr in snrs_db:
            bar.set_postfix(policy=name, snr_db=snr, refresh=False)
            for seed in range(seeds):
                cells.append(run_cell(env, policy, name, snr, seed, snr_noise_db))
                bar.update()
        if say:
            say(f"sweep: {name} done")
    bar.close()
    return cells


def table(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, spread (std over seeds) and 95% CI half-width of accuracy, payload bytes, airtime and reward per
    (policy, set SNR), with the mean SNR the policy saw (the measured one)."""
    rows = []
    for name in dict.fromkeys(c["policy"] for c in cells):
        for snr in sorted({c["snr_db"] for c in cells if c["policy"] == name}):
            group = [c for c in cells if c["policy"] == name and c["snr_db"] == snr]
            row = {"policy": name, "snr_db": snr, "n": len(group)}
            row["snr_db_measured"] = float(np.mean([c["snr_db_measured"] for c in group]))
            for key in ("accuracy", "payload_bytes", "airtime_s", "reward", "rank_sum"):
                v = np.array([c[key] for c in group], float)
                row[key], row[f"{key}_std"] = float(v.mean()), float(v.std())
                row[f"{key}_ci95"] = mean_ci(list(v))["ci95"]
            rows.append(row)
    return rows


def checks(rows: list[dict[str, Any]], learned: str = "airllm", fp32_rank8_bytes: int | None = None,
           accuracy_slack: float = 0.005) -> dict[str, Any]:
    """The issue's done-when comparisons, per SNR: learned reward vs the best baseline, airtime vs AdaLoRA, and
    bytes on air at equal accuracy: fixed rank 8 in fp32 (AirLLM's accounting, `fp32_rank8_bytes`) over the
    learned policy's payload, where its accuracy is at most `accuracy_slack` below fixed:8's."""
    out: dict[str, Any] = {"per_snr": []}
    mine = {r["snr_db"]: r for r in rows if r["policy"] == learned}
    for snr, m in sorted(mine.items()):
        base = [r for r in rows if r["snr_db"] == snr and r["policy"].split(":")[0] in BASELINES]
        entry = {"snr_db": snr, "reward": m["reward"]}
        if base:
            best = max(base, key=lambda r: r["reward"])
            entry.update(best_baseline=best["policy"], best_baseline_reward=best["reward"],
                         beats_best=m["reward"] >= best["reward"])
        ada = next((r for r in rows if r["snr_db"] == snr and r["policy"].startswith("adalora")), None)
        if ada:
            entry.update(adalora_accuracy=ada["accuracy"], accuracy=m["accuracy"],
                         airtime_s=m["airtime_s"], adalora_airtime_s=ada["airtime_s"],
                         airtime_saving=1.0 - m["airtime_s"] / ada["airtime_s"] if ada["airtime_s"] else None)
        fixed8 = next((r for r in rows if r["snr_db"] == snr and r["policy"] == "fixed:8"), None)
        if fixed8 and fp32_rank8_bytes and m["payload_bytes"] > 0:
            entry.update(accuracy=m["accuracy"], fixed8_accuracy=fixed8["accuracy"], fp32_rank8_bytes=fp32_rank8_bytes,
                         equal_accuracy=m["accuracy"] >= fixed8["accuracy"] - accuracy_slack,
                         bytes_saving_vs_fp32_rank8=fp32_rank8_bytes / m["payload_bytes"])
        out["per_snr"].append(entry)
    out["beats_best_everywhere"] = all(e.get("beats_best", False) for e in out["per_snr"])
    return out
