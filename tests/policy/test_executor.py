"""The executor without Ray: jobs in this process and in local worker processes (a killed worker's jobs are reported
and run again), actors that keep their object, shared arguments, resource specs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from policy.executor import (ClusterError, InlineExecutor, JobFailed, LocalExecutor, Resources, map_jobs)
from testbed.errors import AirLoraError


def _square(x: int) -> int:
    return x * x


def _die_once(marker: str, i: int) -> int:
    if i == 2 and not os.path.exists(marker):
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return i


def _always_fails(i: int) -> int:
    raise RuntimeError(f"job {i} is broken")


def _user_error(i: int) -> int:
    raise AirLoraError("model 'nope' not found")


def _length(items: list, extra: int) -> int:
    return len(items) + extra


class Counter:
    """A stateful object for an actor."""

    def __init__(self, start: int) -> None:
        self.value = start

    def add(self, k: int) -> int:
        self.value += k
        return self.value


def test_local_workers_run_jobs_and_rerun_those_of_a_killed_worker(tmp_path):
    failures = []
    with LocalExecutor(2) as ex:
        out = dict(map_jobs(ex, _die_once, [(str(tmp_path / "m"), i) for i in range(5)],
                            on_failure=lambda i, e, a: failures.append((i, type(e).__name__))))
        assert out == {i: i for i in range(5)}
        assert (2, "BrokenProcessPool") in failures  # the killed worker's job (others in flight fail with it)
        shared = ex.share(list(range(1000)))
        assert dict(map_jobs(ex, _length, [(shared, k) for k in range(3)])) == {0: 1000, 1: 1001, 2: 1002}
        actor = ex.actor(Counter, (10,))
        assert [actor.call("add", 1).result(), actor.call("add", 5).result(), actor.attr("value").result()] == \
            [11, 16, 16]


def test_failures_are_retried_then_refused_and_user_errors_are_not_retried():
    seen = []
    with pytest.raises(JobFailed, match="job 0 failed 3 time"):
        list(map_jobs(InlineExecutor(), _always_fails, [(0,)], on_failure=lambda i, e, a: seen.append(a)))
    assert seen == [1, 2, 3]
    seen.clear()
    with pytest.raises(AirLoraError, match="model 'nope' not found"):
        list(map_jobs(InlineExecutor(), _user_error, [(0,)], on_failure=lambda i, e, a: seen.append(a)))
    assert seen == []
    assert list(map_jobs(InlineExecutor(), _square, [(3,), (4,)])) == [(0, 9), (1, 16)]
    actor = InlineExecutor().actor(Counter, (1,))
    assert actor.call("add", 2).result() == 3


def test_resource_specs():
    assert Resources.parse("") == Resources(1.0, 0.0, {})
    assert Resources.parse("", gpus=1) == Resources(1.0, 1.0, {})
    assert Resources.parse("cpus=4,pluto=1", gpus=1) == Resources(4.0, 1.0, {"pluto": 1.0})
    assert Resources.parse("cpus=0.5").threads() == 1
    for bad in ("pluto", "pluto=nan", "pluto=-1", "a b=1", "CPU=2"):
        with pytest.raises(ClusterError):
            Resources.parse(bad)
