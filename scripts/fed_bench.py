"""Benchmark of federated fine-tuning over the air (issue 15's figures; a benchmark, not a timed test).

Runs `airlora fed`'s rounds (host.fed_experiment, real edge processes, real uplinks over the ZeroMQ IQ cable) for
several variants on the embedded default (MiniLM-L6, Rotten Tomatoes), label-skewed shards, and fine-tunes centrally
on the union of the shards with the same total number of steps (edges x rounds x local steps) at uniform rank 8:

    .venv/bin/python scripts/fed_bench.py [--edges 4] [--rounds 5] [--local-steps 25] [--alpha 1.0]
        [--shards dirichlet-balanced]
        [--variants het-svd,het-stack,het-fedavg,uniform8-fedavg,het-svd-dp8] [--out runs/fed_bench.json]

Prints one line per variant (final and best global accuracy with its Wilson 95 % interval on the test split, total
uplink and downlink airtime, epsilon, the seeds) and writes the records as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {
    "het-svd": {"fed.policy": "heuristic", "fed.aggregation": "svd"},
    "het-stack": {"fed.policy": "heuristic", "fed.aggregation": "stack"},
    "het-fedavg": {"fed.policy": "heuristic", "fed.aggregation": "fedavg"},
    "uniform8-fedavg": {"fed.policy": "fixed:8", "fed.aggregation": "fedavg"},
    "het-svd-dp8": {"fed.policy": "heuristic", "fed.aggregation": "svd", "fed.dp.enabled": "true",
                    "fed.dp.target_epsilon": "8", "fed.dp.clip_norm": "1.0"},
}


def wilson(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % at z = 1.96) of an accuracy measured on n examples."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(centre - half, 4), round(centre + half, 4)


def central(cfg, total_steps: int) -> dict:
    """Fine-tune on the union of the shards (the whole training split) with total_steps steps at uniform rank 8."""
    from adapters import ranks as rk
    from ml.data import load_task
    from ml.evaluate import accuracy
    from ml.finetune import train_lora
    from ml.models import head_module_names, load_classifier

    splits = load_task(cfg.data)
    model, tok = load_classifier(cfg.model, splits.num_labels)
    ranks = rk.parse_ranks("uniform:8", rk.adaptable_modules(model, cfg.finetune.target_modules))
    t0 = time.monotonic()
    result = train_lora(model, tok, splits.train, ranks, cfg.finetune, head_module_names(model), cfg.model.max_length,
                        total_steps)
    return {"variant": "central-r8", "steps": total_steps,
            "final_accuracy": accuracy(result.model, tok, splits.test, cfg.model.max_length),
            "wall_s": round(time.monotonic() - t0, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--local-steps", type=int, default=25)
    p.add_argument("--alpha", type=float, default=1.0, help="Dirichlet label skew")
    p.add_argument("--shards", default="dirichlet-balanced", help="fed.shards: dirichlet-balanced, dirichlet or iid")
    p.add_argument("--variants", default=",".join(VARIANTS) + ",central")
    p.add_argument("--eval-examples", type=int, default=200)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", default="runs/fed_bench.json")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from host.fed_experiment import run_fed_rounds
    from testbed.config import load
    from testbed.results import RunFolder

    base = [f"fed.edges={args.edges}", f"fed.rounds={args.rounds}", f"fed.local_steps={args.local_steps}",
            f"fed.shards={args.shards}", f"fed.dirichlet_alpha={args.alpha}", f"fed.eval_examples={args.eval_examples}",
            *args.overrides]
    records = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.variants.split(","):
        t0 = time.monotonic()
        if name == "central":
            cfg = load(None, base)
            rec = central(cfg, args.edges * args.rounds * args.local_steps)
        else:
            cfg = load(None, base + [f"{k}={v}" for k, v in VARIANTS[name].items()])
            folder = RunFolder(cfg.run.out_dir)
            try:
                s = run_fed_rounds(cfg, folder, lambda text: print(f"  [{name}] {text}", file=sys.stderr))
            finally:
                folder.close()
            rows = s["rounds"]
            folder.write_rows("rounds.csv", rows)
            folder.write_rows("edges.csv", s["edges"])
            rec = {"variant": name, "run_dir": str(folder.path),
                   "accuracy_per_round": [r["global_accuracy"] for r in rows],
                   "final_accuracy": rows[-1]["global_accuracy"], "best_accuracy": max(r["global_accuracy"] for r in rows),
                   "uplink_airtime_s": rows[-1]["cumulative_uplink_airtime_s"],
                   "downlink_airtime_s": rows[-1]["cumulative_downlink_airtime_s"],
                   "rank_sums": {e["edge"]: e["rank_sum"] for e in s["edges"] if e["round"] == 1},
                   "epsilon": rows[-1]["epsilon"], "noise_multiplier": s["noise_multiplier"],
                   "wall_s": round(time.monotonic() - t0, 1)}
        n_test = cfg.data.test_size
        rec.update(test_examples=n_test, ci95_final=wilson(rec["final_accuracy"], n_test),
                   seeds={"shard_seed": cfg.fed.shard_seed, "finetune.seed": cfg.finetune.seed,
                          "dp.seed": cfg.fed.dp.seed, "channel.seed": cfg.channel.seed})
        records.append(rec)
        print(json.dumps(rec), flush=True)
        out.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
