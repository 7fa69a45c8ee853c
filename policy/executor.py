"""Where jobs run: in this process, in local worker processes, or on a Ray cluster, behind one interface.

A job is a picklable function and its arguments (one fine-tune, one sweep cell, one learner's training); an actor
is an object built in a worker and kept there (a real environment that keeps its base model loaded). Every call
returns a `concurrent.futures.Future` whatever runs it, so callers wait one way. `map_jobs` runs many jobs, keeps
a bounded number in flight, reports a failed job and runs it again. Each job and actor declares `Resources`: on
Ray they place it (CPUs, a GPU, a custom resource such as `pluto` that only hosts with a radio offer); in every
backend its CPUs are its torch threads.
"""

from __future__ import annotations

import math
import os
import re
import socket
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import AirLoraError

RAY_HINT = "install the cluster extra: pip install -e '.[cluster]'"
ADDRESS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,252}:\d{1,5}$")
RESOURCE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


class ClusterError(AirLoraError):
    """The executor cannot run what was asked (Ray missing, no cluster at an address, an impossible resource)."""


class JobFailed(ClusterError):
    """A job failed on every attempt."""


@dataclass(frozen=True)
class Resources:
    """What one job or actor asks for: CPUs (also its torch threads), GPUs, custom resources such as {"pluto": 1}."""

    cpus: float = 1.0
    gpus: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)

    def threads(self) -> int:
        """torch threads of a job holding these CPUs."""
        return max(1, int(self.cpus))

    @staticmethod
    def parse(text: str, gpus: float = 0.0) -> Resources:
        """Resources from `cpus=2,gpus=1,pluto=1` (absent: 1 CPU, `gpus` GPUs, no custom resource)."""
        values: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, _, value = part.partition("=")
            try:
                amount = float(value)
            except ValueError:
                amount = math.nan
            if not RESOURCE_RE.match(name) or not 0 <= amount <= 1024:  # NaN fails too
                raise ClusterError(f"resources {text[:80]!r}: expected NAME=N pairs with N in 0..1024, e.g. "
                                   "cpus=2,gpus=1,pluto=1")
            if name in ("CPU", "GPU", "memory", "object_store_memory"):
                raise ClusterError(f"resources {text[:80]!r}: {name} is Ray's own; write cpus=N / gpus=N")
            values[name] = amount
        cpus, gpus = values.pop("cpus", 1.0), values.pop("gpus", gpus)
        return Resources(cpus, gpus, values)


class Actor(ABC):
    """An object living where an executor put it; its methods run there, one call at a time."""

    @abstractmethod
    def call(self, method: str, *args: Any) -> Future:
        """Run obj.method(*args) where the object lives."""

    def attr(self, name: str) -> Future:
        """The object's attribute `name` (a copy)."""
        return self.call("__getattribute__", name)


class Executor(ABC):
    """Runs jobs and holds actors; a context manager that releases its workers."""

    kind: str = "executor"

    @abstractmethod
    def submit(self, fn: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Future:
        """Start fn(*args); its result or exception arrives in the future."""

    @abstractmethod
    def actor(self, factory: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Actor:
        """An actor holding factory(*args)."""

    @abstractmethod
    def capacity(self, resources: Resources) -> int:
        """How many jobs asking for `resources` run at once."""

    def actor_room(self, resources: Resources) -> int | None:
        """How many actors asking for `resources` can live at once (None: no limit here)."""
        return None

    def in_flight(self, resources: Resources) -> int:
        """How many jobs `map_jobs` keeps submitted: twice the capacity, so no worker waits for the next one."""
        return 2 * self.capacity(resources)

    def gpus(self) -> float:
        """GPUs a job may ask for here (0: jobs run on CPUs)."""
        return 0.0

    def share(self, obj: Any) -> Any:
        """`obj` as an argument of many jobs: stored once (a file, Ray's object store) and loaded once per worker,
        instead of being sent with every job; here it is passed as it is."""
        return obj

    def describe(self) -> str:
        """One line: where jobs run."""
        return self.kind

    def close(self) -> None:
        """Release workers and actors."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _done(fn: Callable[..., Any], args: Sequence[Any]) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - delivered through the future, as a pool would
        future.set_exception(exc)
    return future


class _InlineActor(Actor):
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def call(self, method: str, *args: Any) -> Future:
        return _done(getattr(self.obj, method), args)


class InlineExecutor(Executor):
    """Runs each job when it is submitted, in this process, with this process's torch threads (the default)."""

    kind = "inline"

    def submit(self, fn: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Future:
        return _done(fn, args)

    def actor(self, factory: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Actor:
        return _InlineActor(factory(*args))

    def capacity(self, resources: Resources) -> int:
        return 1

    def in_flight(self, resources: Resources) -> int:
        return 1  # a job runs as it is submitted: one at a time, so results are written as they come

    def describe(self) -> str:
        return "this process"


def _set_threads(threads: int) -> None:
    """A worker's torch threads: set now if torch is loaded, else by the environment torch reads when it loads."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


class Shared(ABC):
    """A handle for an object many jobs take (`Executor.share`): each worker loads it once and keeps it."""

    @abstractmethod
    def load(self) -> Any:
        """The object, loaded from where it is stored."""


_SHARED: dict[str, Any] = {}  # a worker's loaded shared objects


def _resolve(args: Sequence[Any], key: Callable[[Shared], str]) -> list[Any]:
    """Arguments with every Shared handle replaced by its object (loaded on this worker's first use)."""
    out = []
    for a in args:
        if isinstance(a, Shared):
            k = key(a)
            if k not in _SHARED:
                if len(_SHARED) >= 64:
                    _SHARED.clear()
                _SHARED[k] = a.load()
            a = _SHARED[k]
        out.append(a)
    return out


class _SharedFile(Shared):
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Any:
        import pickle

        with open(self.path, "rb") as f:
            return pickle.load(f)


class _SharedRef(Shared):
    def __init__(self, ref: Any) -> None:
        self.ref = ref  # wrapped, so that Ray passes the reference and the worker fetches it once

    def load(self) -> Any:
        import ray

        return ray.get(self.ref)


def _local_job(fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    return fn(*_resolve(args, lambda h: h.path))


_ACTOR: Any = None  # the object of a local actor process


def _start_actor(factory: Callable[..., Any], args: Sequence[Any], threads: int) -> None:
    global _ACTOR
    _set_threads(threads)
    _ACTOR = factory(*args)


def _actor_call(method: str, args: Sequence[Any]) -> Any:
    return getattr(_ACTOR, method)(*args)


class _LocalActor(Actor):
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def call(self, method: str, *args: Any) -> Future:
        return self.pool.submit(_actor_call, method, args)


class LocalExecutor(Executor):
    """`workers` spawned processes on this machine, each with cpu_count // workers torch threads; a pool broken by
    a killed worker is replaced at the next submit. Actors are one process each. Resources other than the thread
    count are not checked: this machine has what it has."""

    kind = "local"

    def __init__(self, workers: int) -> None:
        if not 1 <= workers <= 256:
            raise ClusterError(f"workers must be in 1..256, not {workers}")
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool: Any = None
        self._actors: list[Any] = []
        self._shared_dir: Any = None

    def _ctx(self) -> Any:
        import multiprocessing as mp

        return mp.get_context("spawn")

    def submit(self, fn: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Future:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        for _ in range(2):
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx(), initializer=_set_threads,
                                                 initargs=(self.threads,))
            try:
                return self._pool.submit(_local_job, fn, tuple(args))
            except BrokenProcessPool:  # a worker died: its jobs fail (and are retried), new ones get a new pool
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        raise ClusterError("local worker processes keep dying")  # pragma: no cover

    def actor(self, factory: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Actor:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(1, mp_context=self._ctx(), initializer=_start_actor,
                                   initargs=(factory, tuple(args), self.threads))
        self._actors.append(pool)
        return _LocalActor(pool)

    def capacity(self, resources: Resources) -> int:
        return self.workers

    def share(self, obj: Any) -> Any:
        import pickle
        import tempfile

        if self._shared_dir is None:
            self._shared_dir = tempfile.TemporaryDirectory(prefix="airlora-shared-")
        path = os.path.join(self._shared_dir.name, f"{len(os.listdir(self._shared_dir.name))}.pkl")
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        return _SharedFile(path)

    def describe(self) -> str:
        return f"{self.workers} local processes, {self.threads} torch thread(s) each"

    def close(self) -> None:
        for pool in [self._pool, *self._actors]:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._actors = None, []
        if self._shared_dir is not None:
            self._shared_dir.cleanup()
            self._shared_dir = None


def _ray_job(fn: Callable[..., Any], threads: int, *args: Any) -> Any:
    """A job in a Ray worker: its torch threads are its CPUs."""
    _set_threads(threads)
    return fn(*_resolve(args, lambda h: h.ref.hex()))


class _RayHolder:
    """The Ray actor class behind every `Executor.actor`: builds the object in its worker and calls its methods."""

    def __init__(self, factory: Callable[..., Any], args: Sequence[Any], threads: int) -> None:
        _set_threads(threads)
        self.obj = factory(*args)

    def call(self, method: str, args: Sequence[Any]) -> Any:
        return getattr(self.obj, method)(*args)


class _RayActor(Actor):
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def call(self, method: str, *args: Any) -> Future:
        return self.handle.call.remote(method, args).future()


class RayExecutor(Executor):
    """Jobs as Ray tasks and actors as Ray actors, placed by their resources. `address`: None joins the cluster
    this machine runs (`ray start`) or starts a local one; `auto` joins this machine's cluster; `HOST:PORT` joins
    the cluster whose head listens there. A Ray already initialised in this process is used as it is."""

    kind = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> None:
        try:
            import ray
        except ImportError:
            raise ClusterError(f"--ray needs Ray, which is not installed here; {RAY_HINT}") from None
        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            _connect(ray, address, num_cpus, verbose)
        self._task = ray.remote(max_retries=0)(_ray_job)  # retries are map_jobs', so they are reported
        self._holder = ray.remote(max_restarts=0)(_RayHolder)
        self._actors: list[Any] = []
        self._checked: set[tuple] = set()

    def _options(self, resources: Resources) -> dict[str, Any]:
        self._check(resources)
        opts: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus}
        if resources.custom:
            opts["resources"] = dict(resources.custom)
        return opts

    def _check(self, resources: Resources) -> None:
        """Refuse resources no node offers: Ray would wait for them forever."""
        key = (resources.cpus, resources.gpus, tuple(sorted(resources.custom.items())))
        if key in self._checked:
            return
        wanted = {"CPU": resources.cpus, "GPU": resources.gpus, **resources.custom}
        wanted = {k: v for k, v in wanted.items() if v > 0}
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        if not any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in nodes):
            have = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in wanted}
            short = next(k for k, v in wanted.items() if have[k] < v)
            hint = (f"; start a node offering it: ray start --address=HEAD:6379 --resources '{{\"{short}\": 1}}'"
                    if short not in ("CPU", "GPU") else "")
            raise ClusterError(f"no node of the Ray cluster offers {short} {wanted[short]:g} to one job "
                               f"(the most one node has: {have[short]:g}){hint}")
        self._checked.add(key)

    def submit(self, fn: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Future:
        return self._task.options(**self._options(resources)).remote(fn, resources.threads(), *args).future()

    def actor(self, factory: Callable[..., Any], args: Sequence[Any], resources: Resources = Resources()) -> Actor:
        handle = self._holder.options(**self._options(resources)).remote(factory, tuple(args), resources.threads())
        self._actors.append(handle)
        return _RayActor(handle)

    def capacity(self, resources: Resources) -> int:
        wanted = {"CPU": resources.cpus, "GPU": resources.gpus, **resources.custom}
        wanted = {k: v for k, v in wanted.items() if v > 0}
        total = 0
        for node in self.ray.nodes():
            if node.get("Alive"):
                total += int(min((node["Resources"].get(k, 0.0) // v for k, v in wanted.items()), default=1))
        return max(1, total)

    def actor_room(self, resources: Resources) -> int | None:
        self._check(resources)
        return self.capacity(resources)  # an actor holds its resources while it lives: more would wait forever

    def gpus(self) -> float:
        return float(self.ray.cluster_resources().get("GPU", 0.0))

    def share(self, obj: Any) -> Any:
        return _SharedRef(self.ray.put(obj))

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        custom = {k: v for k, v in res.items() if k not in ("CPU", "GPU", "memory", "object_store_memory")
                  and not k.startswith("node:") and not k.startswith("accelerator_type:")}
        extra = "".join(f", {k} {v:g}" for k, v in sorted(custom.items()))
        return f"Ray cluster: {nodes} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs{extra}"

    def close(self) -> None:
        for handle in self._actors:
            self.ray.kill(handle)
        self._actors = []
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def _connect(ray: Any, address: str | None, num_cpus: int | None, verbose: bool) -> None:
    """ray.init for `address` (see RayExecutor), refusing a malformed or silent address in one line first:
    Ray itself keeps retrying an address nobody answers at."""
    import logging

    quiet = {"include_dashboard": False, "log_to_driver": verbose,
             "logging_level": logging.INFO if verbose else logging.ERROR}
    if address not in (None, "auto"):
        if not ADDRESS_RE.match(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
            raise ClusterError(f"--ray {address[:80]!r}: expected auto or HOST:PORT of a Ray head (e.g. 10.0.0.5:6379)")
        host, port = address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=3.0).close()
        except OSError as exc:
            raise ClusterError(f"no Ray head answers at {address} ({exc.strerror or exc}); start one there with "
                               "`ray start --head`") from None
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot join the Ray cluster at {address or 'this machine'}: {first[:200]}") from None


def make_executor(ray: str | None = None, workers: int = 1, use_ray: bool = False,
                  verbose: bool = False) -> Executor:
    """The executor a command asked for: Ray when `use_ray` (at `ray`: None, auto or HOST:PORT), else `workers`
    local processes, else this process."""
    if use_ray:
        return RayExecutor(ray, verbose=verbose)
    return LocalExecutor(workers) if workers > 1 else InlineExecutor()


def cause(exc: BaseException) -> BaseException:
    """The error a job raised, without Ray's wrapper (whose text is the whole remote traceback)."""
    inner = getattr(exc, "cause", None)
    return inner if isinstance(inner, BaseException) else exc


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for reports."""
    exc = cause(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def map_jobs(executor: Executor, fn: Callable[..., Any], args_list: Sequence[Sequence[Any]],
             resources: Resources = Resources(), retries: int = 2,
             on_failure: Callable[[int, BaseException, int], None] | None = None) -> Iterator[tuple[int, Any]]:
    """fn(*args) for every args, yielded as (index, result) as they finish. A job that fails (it raised, or its
    worker died) is reported to `on_failure(index, error, attempt)` and run again, up to `retries` more times;
    then JobFailed. A user error (AirLoraError) is not retried: it is raised at once, as the job raised it."""
    todo = list(range(len(args_list)))[::-1]
    pending: dict[Future, tuple[int, int]] = {}
    limit = max(1, executor.in_flight(resources))
    try:
        while todo or pending:
            while todo and len(pending) < limit:
                i = todo.pop()
                pending[executor.submit(fn, args_list[i], resources)] = (i, 0)
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                i, attempt = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - every failure is reported, then retried or raised
                    error = cause(exc)
                    if isinstance(error, AirLoraError):
                        raise error from None
                    if on_failure:
                        on_failure(i, exc, attempt + 1)
                    if attempt >= retries:
                        raise JobFailed(f"job {i} failed {attempt + 1} time(s); last: {one_line(exc)}") from None
                    pending[executor.submit(fn, args_list[i], resources)] = (i, attempt + 1)
                    continue
                yield i, result
    finally:
        for future in pending:
            future.cancel()
