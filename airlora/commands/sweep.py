"""`airlora sweep`: run each rank policy at each SNR over seeds; results folder, table, plots, --json cells.
The cells run here, on local worker processes or on a Ray cluster (policy/sweep_jobs.py); --resume continues a
sweep that stopped."""

from __future__ import annotations

import argparse
import re

from airlora.commands.cluster_options import add_cluster_arguments, job_resources, make_executor
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
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="FOLDER",
                        help="continue a sweep that stopped (default: the newest sweep folder under policy.out_dir): "
                             "cells and fine-tunes it finished are not run again")
    parser.add_argument("--json", action="store_true", help="print one JSON object with a `cells` list")
    add_verbose_argument(parser)
    add_cluster_arguments(parser, "local worker processes for the cells (surrogate) or the fine-tunes (real env)")


def run(args: argparse.Namespace) -> int:
    start_model_verb(args)
    cfg = load_config(args)
    seeds = args.seeds or cfg.policy.seeds
    if seeds < 1 or not args.snr_db:
        raise AirLoraError("--seeds must be >= 1 and --snr-db must name at least one SNR")
    from pathlib import Path

    from policy import plots
    from policy.cost import lora_payload_bytes
    from policy.sweep import checks, table
    from policy.sweep_jobs import latest_sweep, run_sweep_jobs

    env_kind = args.env or cfg.policy.env
    if env_kind == "surrogate":
        import torch

        torch.set_num_threads(1)  # small networks: one thread is faster
    specs = [s.strip() for s in args.policies.split(",") if s.strip()]
    say = (lambda s: None) if args.json else echo
    where = None
    if args.resume is not None:
        where = Path(args.resume) if args.resume else latest_sweep(cfg.policy.out_dir)
        if not where.is_dir():
            raise AirLoraError(f"--resume {where}: no such folder")
    with make_executor(args) as executor:
        ran_on = executor.describe()
        say(f"sweep on {ran_on}")
        result = run_sweep_jobs(cfg, env_kind, specs, args.snr_db, seeds, executor,
                                job_resources(args, executor, finetunes=False),
                                job_resources(args, executor, finetunes=True), resume=where, say=say)
    env, policies, cells, folder = result.env, result.policies, result.cells, result.folder
    rows = table(cells)
    folder.write_config(cfg.model_dump(mode="json"))
    folder.write_rows("cells.csv", cells)
    folder.write_rows("table.csv", rows)
    plots.accuracy_vs_airtime(cells, folder.path / "accuracy_vs_airtime.png")
    plots.reward_per_snr(cells, folder.path / "reward_per_snr.png")
    plots.rank_maps(cells, env.problem.modules, env.problem.r_max, folder.path / "rank_heatmap.png")
    plots.rank_sum_per_snr(cells, folder.path / "rank_sum_per_snr.png")
    learned = next((n for n in policies if n.startswith("airllm")), None)
    summary = {"folder": str(folder.path), "env": env_kind, "cost": cfg.policy.cost, "table": rows,
               "ran_on": ran_on, "resumed_cells": result.resumed, "finetunes": result.finetunes,
               "failures": result.failures}
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
    if result.resumed:
        print(f"resumed: {result.resumed} of {len(cells)} cells were finished before")
    for f in result.failures:
        print(f"failed and run again: {f['job']} {f['which']} (attempt {f['attempt']}): {f['error']}")
    print(f"results in {folder.path}")
    return 0
