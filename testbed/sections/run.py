"""The `run:` section: the rounds `airlora run` performs and how it reaches the edge."""

from typing import Annotated, Literal

from pydantic import Field

from testbed.sections.base import Section

DAY_S = 86400.0
"""The longest delivery or apply a run waits for: longer ones are typos, not plans (and overflow timers)."""
SnrDb = Annotated[float, Field(ge=-30.0, le=60.0)]
Rank = Annotated[int, Field(ge=1, le=1024)]


class RunConfig(Section):
    """The closed loop: rounds, rank policy, deadlines, where results go."""

    rounds: int = Field(3, ge=1, le=10000, description="fine-tune -> deliver -> apply rounds")
    policy: str = Field("heuristic", description="rank policy: heuristic | fixed:<rank> | random[:seed] | adalora[:r] | ppo:<ckpt> | airllm:<ckpt>")
    snr_db_rounds: list[SnrDb] = Field(
        default_factory=list, max_length=10000,
        description="emulated channels: SNR (-30..60 dB) set for each round (cycled); empty keeps channel.snr_db")
    r_max: int = Field(16, ge=1, le=1024, description="largest rank a policy may pick")
    rank_candidates: list[Rank] = Field([1, 2, 4, 8, 16], min_length=1, max_length=64,
                                        description="uniform ranks (1..1024) the heuristic tries")
    airtime_budget_s: float = Field(20.0, gt=0.0, le=DAY_S, description="airtime one adapter delivery may take "
                                                                          "(policy); at most a day")
    delivery_timeout_s: float = Field(300.0, gt=0.0, le=DAY_S,
                                      description="wall time before a delivery is given up; at most a day")
    apply_timeout_s: float = Field(600.0, gt=0.0, le=DAY_S,
                                   description="wall time the edge may take to apply + evaluate; at most a day")
    burst_report_timeout_s: float = Field(30.0, gt=0.0, le=3600.0,
                                          description="wait for the edge's report after a burst; at most an hour")
    steps: int | None = Field(None, ge=1, le=10**6, description="fine-tuning steps per round (null: finetune.steps)")
    edge: Literal["local", "remote"] = Field(
        "local", description="local: start an edge process on this machine; remote: one already runs")
    edge_start_timeout_s: float = Field(120.0, gt=0.0, le=3600.0,
                                        description="wait for a local edge to answer; at most an hour")
    out_dir: str = Field("runs", description="results go to <out_dir>/<timestamp>/")
