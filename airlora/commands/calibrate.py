"""`airlora calibrate`: does the configured reward trade accuracy against airtime, and which weights would?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from airlora.commands.common import (add_config_arguments, add_verbose_argument, comma_floats, load_config,
                                     start_model_verb, write_report)
from testbed.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--ranks", default="0,1,2,4,8,16", help="uniform ranks (0: nothing sent, the plateau)")
    parser.add_argument("--snr-db", type=comma_floats, default=[-5.0, 0.0, 5.0, 10.0, 15.0], help="channel SNRs [dB]")
    parser.add_argument("--seeds", type=int, default=3, help="fine-tunes per rank (finetune.seed 0..N-1)")
    parser.add_argument("--measured", default=None,
                        help="reuse the fine-tunes of an earlier run's JSON (its `measured`) instead of training")
    parser.add_argument("--out", default=None, help="also write the JSON report to this file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_verbose_argument(parser)


def run(args: argparse.Namespace) -> int:
    from adapters.ranks import MAX_RANK
    from ml.data import load_task
    from ml.models import projection_shapes
    from policy.calibration import has_tradeoff, measure_uniform, optimum_per_snr, search, spread_points
    from policy.problem import problem_from_config
    from testbed.progress import echo

    start_model_verb(args)
    cfg = load_config(args)
    try:
        ranks = tuple(sorted({int(r) for r in args.ranks.split(",")}))
    except ValueError:
        raise ConfigError(f"--ranks {args.ranks!r}: expected comma-separated integers, e.g. 0,1,2,4,8,16") from None
    if len(ranks) < 2 or ranks[0] < 0 or ranks[-1] > MAX_RANK or not 1 <= args.seeds <= 100 or not args.snr_db:
        raise ConfigError(f"--ranks needs two or more in 0..{MAX_RANK}, --seeds 1..100, --snr-db at least one SNR")
    if any(not -50.0 <= s <= 60.0 for s in args.snr_db):  # NaN fails too
        raise ConfigError("--snr-db: SNRs must be in -50..60 dB")
    say = (lambda _line: None) if args.json else echo
    if args.measured:
        try:
            earlier = json.loads(Path(args.measured).read_text())["measured"]
            measured = {int(r): m for r, m in earlier.items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"--measured {args.measured}: not a calibrate report ({exc})") from None
    else:
        measured = measure_uniform(cfg, ranks, args.seeds, say)
    splits = load_task(cfg.data)
    modules, shapes = projection_shapes(cfg.model, cfg.finetune.target_modules, splits.num_labels)
    problem = problem_from_config(cfg, modules, shapes)
    plateau = measured[min(measured)]["accuracy"]["mean"]
    rows = optimum_per_snr(measured, problem, args.snr_db)
    verdict = has_tradeoff(rows, plateau)
    grid = search(measured, problem, args.snr_db)
    report = {"regime": {"steps": cfg.policy.real_steps, "train_subset": cfg.policy.real_train_subset,
                         "eval_size": cfg.policy.real_eval_size, "lr": cfg.finetune.lr,
                         "alpha_mode": cfg.finetune.alpha_mode, "alpha": cfg.finetune.alpha},
              "link": {"sample_rate_hz": cfg.radio.sample_rate_hz, "cost": cfg.policy.cost},
              "configured": {"cost_weight": cfg.policy.cost_weight, "deadline_s": cfg.policy.deadline_s, **verdict,
                             "per_snr": rows},
              "accuracy_spread_points": spread_points(measured), "suggestions": grid[:5],
              "measured": {str(r): m for r, m in measured.items()}}
    if write_report(report, args.out, args.json):
        return 0
    print(f"uniform ranks on the real regime ({cfg.policy.real_steps} steps, {cfg.policy.real_train_subset} examples, "
          f"{args.seeds} seeds): accuracy mean ±95% CI (std)")
    for r, m in sorted(measured.items()):
        a = m["accuracy"]
        print(f"  rank {r:>3}: {a['mean']:.3f} ±{a['ci95']:.3f} ({a['std']:.3f})   loss {m['loss']['mean']:.4f}")
    print(f"configured reward (cost weight {cfg.policy.cost_weight:g}/s, deadline {cfg.policy.deadline_s:g} s): "
          "best uniform rank per SNR " + ", ".join(f"{r['snr_db']:g} dB -> {r['best_rank']}" for r in rows))
    print(f"  trade-off {'holds' if verdict['holds'] else 'does NOT hold'}: {len(verdict['distinct_best_ranks'])} "
          f"distinct optima (need 3), accuracy at the top SNR {100 * verdict['gain_at_top_snr']:+.1f} points over "
          "the plateau (need +5)")
    for g in grid[:3]:
        print(f"  candidate: cost weight {g['cost_weight']:g}/s, deadline {g['deadline_s']:g} s -> best ranks "
              f"{g['best_ranks']} ({'holds' if g['holds'] else 'does not hold'}, "
              f"{100 * g['gain_at_top_snr']:+.1f} points at the top SNR)")
    print(f"largest accuracy spread over seeds: {report['accuracy_spread_points']:.1f} points")
    return 0
