"""An environment that lives in an executor's actor: a real environment in a worker process or on a Ray node
keeps its base model loaded and its fine-tune cache, and the learner steps several of them at once."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from policy.executor import Actor, ClusterError, Executor, JobFailed, Resources, one_line

if TYPE_CHECKING:
    from testbed.config import TestbedConfig


class RemoteEnv:
    """The RankEnv calls the training loop makes (`reset`, `step`, `step_async`, `outcome`, `reseed`), run in an
    actor; `problem` and `data_features` are copied here once."""

    def __init__(self, actor: Actor, index: int = 0) -> None:
        self.actor, self.index = actor, index
        self.problem = self._get(actor.attr("problem"))
        self.data_features = self._get(actor.attr("data_features"))
        self.episode_steps = self._get(actor.attr("episode_steps"))
        self.steps_taken = 0

    def _get(self, future: Future) -> Any:
        try:
            return future.result()
        except Exception as exc:  # an actor is not restarted: its cache and model went with it
            raise JobFailed(f"environment actor {self.index} failed: {one_line(exc)}") from None

    def reseed(self, seed: int) -> None:
        """Start over as if built with `seed` (see RankEnv.reseed)."""
        self._get(self.actor.call("reseed", seed))
        self.steps_taken = 0

    def reset(self, snr_db: float | None = None) -> np.ndarray:
        """RankEnv.reset, in the actor."""
        return self._get(self.actor.call("reset", snr_db))

    def step_async(self, ranks: list[int]) -> Future:
        """RankEnv.step started in the actor; the future holds (obs, reward, done, outcome)."""
        self.steps_taken += 1
        out: Future = Future()

        def settle(inner: Future) -> None:
            try:
                out.set_result(self._get(inner))
            except JobFailed as exc:
                out.set_exception(exc)

        self.actor.call("step", list(ranks)).add_done_callback(settle)
        return out

    def step(self, ranks: list[int]) -> tuple:
        """RankEnv.step, in the actor."""
        return self.step_async(ranks).result()

    def outcome(self, ranks: list[int], snr_db: float, data: int = 0) -> Any:
        """RankEnv.outcome, in the actor."""
        return self._get(self.actor.call("outcome", list(ranks), snr_db, data))


def real_env_actors(executor: Executor, cfg: TestbedConfig, count: int, resources: Resources) -> list[RemoteEnv]:
    """`count` real environments as actors of `executor` (each loads the base model once and keeps it)."""
    from policy.env import make_env

    room = executor.actor_room(resources)
    if room is not None and count > room:
        raise ClusterError(f"{count} environments asking for {resources.cpus:g} CPU(s), {resources.gpus:g} GPU(s) "
                           f"each do not fit: the cluster holds {room} at once; lower --num-envs or add nodes")
    actors = [executor.actor(make_env, (cfg, "real", i), resources) for i in range(count)]
    return [RemoteEnv(a, i) for i, a in enumerate(actors)]
