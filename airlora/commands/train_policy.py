"""`airlora train-policy`: train the hierarchical PPO + CFG-DDIM policy (and vanilla PPO) on the configured env."""

from __future__ import annotations

import argparse
from pathlib import Path

from airlora.commands.cluster_options import add_cluster_arguments, job_resources, make_executor
from airlora.commands.common import (add_config_arguments, add_verbose_argument, emit_json, load_config,
                                     start_model_verb)
from testbed.errors import AirLoraError
from testbed.progress import echo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--env", choices=("real", "surrogate"), default=None, help="environment (default: policy.env)")
    parser.add_argument("--episodes", type=int, default=None, help="training episodes (default: policy.episodes)")
    parser.add_argument("--ppo-episodes", type=int, default=None,
                        help="vanilla PPO's own budget (default: --episodes), e.g. long enough to converge")
    parser.add_argument("--algos", default="airllm,ppo", help="learners to train: airllm, ppo (comma-separated)")
    parser.add_argument("--seed", type=int, default=None, help="first training seed (default: policy.seed)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each learner with this many seeds (seed, seed+1, ...); the k-th seed's checkpoint "
                             "is <checkpoint stem>-seed<k>.pt and `airlora sweep` uses it for its k-th seed")
    parser.add_argument("--num-envs", type=int, default=None,
                        help="parallel environments (default: 8 on the surrogate, 1 on the real env; there each is an "
                             "actor of --workers / --ray that keeps its base model loaded)")
    parser.add_argument("--checkpoint", default=None, help="airllm checkpoint path (default: policy.checkpoint); "
                        "vanilla PPO goes to ppo.pt beside it")
    parser.add_argument("--collect-finetunes", type=int, default=None, metavar="N",
                        help="instead of training: run N real fine-tunes for the surrogate and write them to "
                             "policy.surrogate_data (resumes a partial file)")
    parser.add_argument("--finetune-steps", type=int, default=None,
                        help="steps of each collected fine-tune (default: policy.real_steps)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_verbose_argument(parser)
    add_cluster_arguments(parser, "local worker processes: collected fine-tunes run on them; (learner, seed) pairs "
                                  "train side by side (surrogate); the real environments live in them (real env)")


def run(args: argparse.Namespace) -> int:
    start_model_verb(args)
    cfg = load_config(args)
    if args.collect_finetunes is not None:
        from policy.finetunes import collect

        if not 1 <= args.collect_finetunes <= 10_000:
            raise AirLoraError("--collect-finetunes must be in 1..10000")
        say = (lambda s: None) if args.json else echo
        with make_executor(args) as executor:
            say(f"fine-tunes on {executor.describe()}")
            data = collect(cfg, Path(cfg.policy.surrogate_data), args.collect_finetunes,
                           steps=args.finetune_steps or cfg.policy.real_steps,
                           train_subset=cfg.policy.real_train_subset, eval_size=cfg.policy.real_eval_size,
                           seed=cfg.policy.seed, executor=executor,
                           resources=job_resources(args, executor, finetunes=True), say=say)
        say(f"{len(data['runs'])} fine-tunes in {cfg.policy.surrogate_data}")
        if args.json:
            emit_json({"runs": len(data["runs"]), "file": cfg.policy.surrogate_data})
        return 0
    algos = [a for a in args.algos.split(",") if a]
    if not algos or set(algos) - {"airllm", "ppo"}:
        raise AirLoraError("--algos takes airllm and/or ppo")
    if args.episodes is not None and args.episodes < 1:
        raise AirLoraError("--episodes must be >= 1")
    if args.ppo_episodes is not None and args.ppo_episodes < 1:
        raise AirLoraError("--ppo-episodes must be >= 1")
    if args.seeds < 1:
        raise AirLoraError("--seeds must be >= 1")
    if args.num_envs is not None and not 1 <= args.num_envs <= 256:
        raise AirLoraError("--num-envs must be in 1..256")
    from policy.training import train_policies

    env_kind = args.env or cfg.policy.env
    with make_executor(args) as executor:
        summary = train_policies(cfg, env_kind=env_kind, episodes=args.episodes or cfg.policy.episodes,
                                 algos=algos, seed=cfg.policy.seed if args.seed is None else args.seed,
                                 num_envs=args.num_envs, checkpoint_path=args.checkpoint,
                                 say=(lambda s: None) if args.json else echo, seeds=args.seeds,
                                 ppo_episodes=args.ppo_episodes, executor=executor,
                                 resources=job_resources(args, executor, finetunes=env_kind == "real"))
    if args.json:
        emit_json(summary)
    else:
        print(f"results in {summary['folder']}")
        for algo, s in summary["learners"].items():
            f = s["final_reward"]
            print(f"{algo}: final greedy reward {f['mean']:.3f} ± {f['std']:.3f} over {len(s['per_seed'])} seed(s) "
                  f"after {s['env_steps']} env steps, checkpoint {s['checkpoint']}")
        if "vs_ppo" in summary:
            for c in summary["vs_ppo"]["per_seed"]:
                print(f"seed {c['seed']}: airllm reached vanilla PPO's final reward {c['ppo_final']:.3f} after "
                      f"{c['airllm_steps']} env steps (PPO trained {c['ppo_steps']}): saving {c['step_saving']}")
            m = summary["vs_ppo"]["step_saving"]
            if m["mean"] is not None:
                print(f"step saving over seeds: {m['mean']:.3f} ± {m['std']:.3f}")
        if "surrogate" in summary:
            s = summary["surrogate"]
            print(f"surrogate: {s['runs']} real fine-tunes, 5-fold MAE loss {s['loss_cv_mae']:.4f} "
                  f"accuracy {s['accuracy_cv_mae']:.4f} (data std {s['loss_std']:.4f} / {s['accuracy_std']:.4f})")
            cv = s["cv"]
            print(f"surrogate {cv['folds']}-fold held-out MAE: loss {cv['heldout_loss_mae']:.4f} (always-the-mean: "
                  f"{cv['heldout_loss_mae_of_mean']:.4f}), accuracy {cv['heldout_accuracy_mae']:.4f} "
                  f"(always-the-mean: {cv['heldout_accuracy_mae_of_mean']:.4f})")
    return 0
