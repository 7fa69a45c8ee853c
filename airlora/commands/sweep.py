"""`airlora sweep`: run each rank policy at each SNR over seeds; results folder, table, plots, --json cells."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timezone

from airlora.commands.common import (add_config_arguments, add_verbose_argument, comma_floats, emit_json,
                                     load_config, start_model_verb)
from testbed.errors import AirLoraError
from testbed.progress import echo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # let `--snr-db -5,0,5` through: argparse only takes plain negative numbers as values by default
    parser._negative_number_matcher = re.compile(r"^-\d[\d.,\-]*$")
    add_config_arguments(parser)
    parser.add_argument("--policies", default="fixed:8,heuristic,adalora,ppo,airllm",
                        help="comma-separated policy specs: fixed:<r>, heuristic, random[:seed], adalora[:r], "
                             "ppo[:<checkpoint>], airllm[:<checkpoint>] (without a path: the train-policy checkpoints)")
    parser.add_argument("--snr-db", type=comma_floats, default=[-5.0, 0.0, 5.0, 10.0, 15.0], help="channel SNRs [dB]")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: policy.seeds)")
    parser.add_argument("--env", choices=("real", "surrogate"), default=None, help="environment (default: policy.env)")
    parser.add_argument("--workers", type=int, default=1,
                        help="real env: run the sweep's fine-tunes over this many local processes first")
    parser.add_argument("--json", action="store_true", help="print one JSON object with a `cells` list")
    add_verbose_argument(parser)


def run(args: argparse.Namespace) -> int:
    start_model_verb(args)
    cfg = load_config(args)
    seeds = args.seeds or cfg.policy.seeds
    if seeds < 1 or not args.snr_db:
        raise AirLoraError("--seeds must be >= 1 and --snr-db must name at least one SNR")
    from policy import plots
    from policy.env import make_env
    from policy.cost import lora_payload_bytes
    from policy.sweep import build_policies, checks, run_sweep, table
    from testbed.results import RunFolder

    env_kind = args.env or cfg.policy.env
    if env_kind == "surrogate":
        import torch

        torch.set_num_threads(1)  # small networks: one thread is faster
    env = make_env(cfg, env_kind, seed=cfg.policy.seed)
    specs = [s.strip() for s in args.policies.split(",") if s.strip()]
    policies = build_policies(specs, env, cfg, seeds)
    say = (lambda s: None) if args.json else echo
    if not 1 <= args.workers <= 64:
        raise AirLoraError("--workers must be in 1..64")
    if env_kind == "real" and args.workers > 1:
        from policy.real_env import RealEnv

        assert isinstance(env, RealEnv)
        env.prefetch(env.plan(lambda: run_sweep(env, policies, args.snr_db, seeds, cfg.policy.snr_noise_db)),
                     args.workers, say)
    cells = run_sweep(env, policies, args.snr_db, seeds, cfg.policy.snr_noise_db, say)
    rows = table(cells)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = RunFolder(cfg.policy.out_dir, f"sweep-{stamp}")
    folder.write_config(cfg.model_dump(mode="json"))
    folder.write_rows("cells.csv", cells)
    folder.write_rows("table.csv", rows)
    plots.accuracy_vs_airtime(cells, folder.path / "accuracy_vs_airtime.png")
    plots.reward_per_snr(cells, folder.path / "reward_per_snr.png")
    plots.rank_maps(cells, env.problem.modules, env.problem.r_max, folder.path / "rank_heatmap.png")
    plots.rank_sum_per_snr(cells, folder.path / "rank_sum_per_snr.png")
    learned = next((n for n in policies if n.startswith("airllm")), None)
    summary = {"folder": str(folder.path), "env": env_kind, "cost": cfg.policy.cost, "table": rows}
    if learned:
        prob = env.problem
        fp32_rank8 = lora_payload_bytes({m: 8 for m in prob.modules}, prob.shapes, "none", prob.block_size,
                                        prob.overhead_bytes)
        summary["checks"] = checks(rows, learned, fp32_rank8_bytes=fp32_rank8)
    if env_kind == "surrogate":
        summary["surrogate"] = env.report()
    folder.write_json("summary.json", summary)
    folder.close()
    if args.json:
        emit_json({**summary, "cells": cells})
        return 0
    print(f"env {env_kind}, cost {cfg.policy.cost}, {seeds} seeds; mean ±95% CI over seeds; SNR: set on the channel / "
          f"mean measured (what the policy saw, estimation noise {cfg.policy.snr_noise_db:g} dB)")
    print(f"{'policy':<12} {'SNR set/meas':>13}  {'accuracy':>13}  {'payload bytes':>17}  {'airtime s':>13}  "
          f"{'reward':>15}")
    for r in rows:
        print(f"{r['policy']:<12} {r['snr_db']:>6g}/{r['snr_db_measured']:<6.2f}  {r['accuracy']:.3f} ±{r['accuracy_ci95']:.3f}  "
              f"{r['payload_bytes']:>8.0f} ±{r['payload_bytes_ci95']:<7.0f}  {r['airtime_s']:>6.2f} ±{r['airtime_s_ci95']:<5.2f}  "
              f"{r['reward']:>7.3f} ±{r['reward_ci95']:.3f}")
    if learned:
        for e in summary["checks"]["per_snr"]:
            line = f"{learned} at {e['snr_db']:g} dB: reward {e['reward']:.3f}"
            if "best_baseline" in e:
                line += f" vs best baseline {e['best_baseline']} {e['best_baseline_reward']:.3f}"
            if "bytes_saving_vs_fp32_rank8" in e:
                line += (f"; {e['bytes_saving_vs_fp32_rank8']:.1f}x fewer bytes than fixed rank 8 in fp32 "
                         f"({'at' if e['equal_accuracy'] else 'NOT at'} equal accuracy: {e['accuracy']:.3f} vs "
                         f"{e['fixed8_accuracy']:.3f})")
            if e.get("airtime_saving") is not None:
                line += (f"; airtime {e['airtime_s']:.2f} s vs AdaLoRA {e['adalora_airtime_s']:.2f} s "
                         f"({100 * e['airtime_saving']:.1f}% less) at accuracy {e['accuracy']:.3f} vs "
                         f"{e['adalora_accuracy']:.3f}")
            print(line)
    print(f"results in {folder.path}")
    return 0
