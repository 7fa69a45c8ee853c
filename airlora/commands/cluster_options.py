"""Where a verb's jobs run: --workers (local processes), --ray [auto|HOST:PORT] and --task-resources, shared by
`sweep` and `train-policy`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from testbed.errors import AirLoraError

if TYPE_CHECKING:
    from policy.executor import Executor, Resources


def add_cluster_arguments(parser: argparse.ArgumentParser, workers_help: str) -> None:
    """--workers, --ray and --task-resources in their own help group."""
    group = parser.add_argument_group("where the work runs (default: this process, one job after another)")
    group.add_argument("--workers", type=int, default=1, help=workers_help)
    group.add_argument("--ray", nargs="?", const="", default=None, metavar="auto|HOST:PORT",
                       help="run the jobs on Ray (the cluster extra): alone, the cluster this machine runs "
                            "(`ray start`) or else a local one for this command; auto: this machine's cluster; "
                            "HOST:PORT: the cluster whose head listens there (docs/cluster.md)")
    group.add_argument("--task-resources", default="", metavar="SPEC",
                       help="what each job asks Ray for: cpus=N (also its torch threads; default 1), gpus=N "
                            "(default: 1 for a real fine-tune when the cluster has GPUs, else 0), NAME=N custom "
                            "resources, e.g. pluto=1 to place the jobs only on hosts that offer a radio")


def make_executor(args: argparse.Namespace) -> Executor:
    """The executor the arguments ask for (close it when done: it is a context manager)."""
    from policy.executor import Resources, make_executor as make

    if not 1 <= args.workers <= 64:
        raise AirLoraError("--workers must be in 1..64")
    if args.ray is not None and args.workers > 1:
        raise AirLoraError("--workers is for local processes; with --ray the cluster's resources set how many "
                           "jobs run at once (--task-resources says what each asks for)")
    if args.task_resources and args.ray is None:
        raise AirLoraError("--task-resources places jobs on a Ray cluster: add --ray")
    Resources.parse(args.task_resources)  # a bad spec is refused before connecting
    return make(args.ray or None, args.workers, use_ray=args.ray is not None, verbose=getattr(args, "verbose", False))


def job_resources(args: argparse.Namespace, executor: Executor, finetunes: bool) -> Resources:
    """What each job asks for: --task-resources, with one GPU per real fine-tune when the cluster has GPUs."""
    from policy.executor import Resources

    gpus = 1.0 if finetunes and executor.gpus() > 0 else 0.0
    return Resources.parse(args.task_resources, gpus=gpus)
