"""The `run:` section: the rounds `airlora run` performs and how it reaches the edge."""

from typing import Literal

from pydantic import Field

from testbed.sections.base import Section


class RunConfig(Section):
    """The closed loop: rounds, rank policy, deadlines, where results go."""

    rounds: int = Field(3, ge=1, le=10000, description="fine-tune -> deliver -> apply rounds")
    policy: str = Field("heuristic", description="rank policy: heuristic | fixed:<rank> | random[:seed] | adalora[:r] | ppo:<ckpt> | airllm:<ckpt>")
    snr_db_rounds: list[float] = Field(
        default_factory=list,
        description="emulated channels: SNR set for each round (cycled); empty keeps channel.snr_db")
    r_max: int = Field(16, ge=1, le=1024, description="largest rank a policy may pick")
    rank_candidates: list[int] = Field([1, 2, 4, 8, 16], description="uniform ranks the heuristic tries")
    airtime_budget_s: float = Field(20.0, gt=0.0, description="airtime one adapter delivery may take (policy)")
    delivery_timeout_s: float = Field(300.0, gt=0.0, description="wall time before a delivery is given up")
    apply_timeout_s: float = Field(600.0, gt=0.0, description="wall time the edge may take to apply + evaluate")
    burst_report_timeout_s: float = Field(30.0, gt=0.0, description="wait for the edge's report after a burst")
    steps: int | None = Field(None, ge=1, description="fine-tuning steps per round (null: finetune.steps)")
    edge: Literal["local", "remote"] = Field(
        "local", description="local: start an edge process on this machine; remote: one already runs")
    edge_start_timeout_s: float = Field(120.0, gt=0.0, description="wait for a local edge to answer")
    out_dir: str = Field("runs", description="results go to <out_dir>/<timestamp>/")
