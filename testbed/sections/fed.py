"""The `fed:` section: federated fine-tuning over the air (`airlora fed`): shards, local training, uplink, DP."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from testbed.sections.base import Section


class DpConfig(Section):
    """Edge-level differential privacy of the aggregate (DP-FedAvg): clip each edge's update, add Gaussian noise."""

    enabled: bool = Field(False, description="clip every edge's update and add noise to the aggregate")
    clip_norm: float = Field(1.0, gt=0.0, le=1.0e6, description="L2 norm each edge's whole update is clipped to")
    noise_multiplier: float | None = Field(
        None, ge=0.0, le=1.0e4, description="noise std / (clip_norm / edges); null: the one that spends "
                                            "target_epsilon over fed.rounds")
    target_epsilon: float = Field(8.0, gt=0.0, le=1.0e4, description="epsilon to spend over all rounds "
                                                                     "(when noise_multiplier is null)")
    delta: float = Field(1.0e-5, gt=0.0, lt=1.0, description="the delta epsilon is reported at")
    seed: int = Field(0, ge=0, description="seed of the noise")


class FedConfig(Section):
    """R rounds over N edges: local training on each edge's shard, adapters up the radio, aggregate, broadcast."""

    rounds: int = Field(2, ge=1, le=1000, description="federated rounds")
    edges: int = Field(2, ge=1, le=64, description="local edges `airlora fed` starts (fleet.local_snr_db sets "
                                                   "their uplink and downlink channels, cycled)")
    local_steps: int = Field(50, ge=1, le=10**6, description="optimizer steps of each edge's local training")
    shards: Literal["iid", "dirichlet", "dirichlet-balanced"] = Field(
        "iid", description="how the training split is cut among the edges: iid | dirichlet (per class, shares over "
                           "the edges ~ Dir(alpha): sizes differ) | dirichlet-balanced (each edge's class mix ~ "
                           "Dir(alpha), equal sizes)")
    dirichlet_alpha: float = Field(0.5, gt=0.0, le=1.0e4, description="label skew of dirichlet shards "
                                                                      "(smaller: fewer classes per edge)")
    shard_seed: int = Field(0, ge=0, description="seed of the shard draw")
    shard_index: int | None = Field(None, ge=0, lt=64, description="an edge's own shard (set per edge by the host's "
                                                                   "run; null on a host)")
    aggregation: Literal["fedavg", "stack", "svd"] = Field(
        "svd", description="fedavg: zero-padded factors averaged | stack: FLoRA stacking (exact, rank = sum) | "
                           "svd: the exact weighted update re-projected to the largest rank")
    policy: str = Field("heuristic", description="rank policy per edge from its measured uplink SNR (as run.policy)")
    eval_examples: int = Field(200, ge=1, le=10**6, description="test examples the edges' local accuracy uses "
                                                                "(the global accuracy uses the whole test split)")
    uplink_deadline_s: float = Field(120.0, gt=0.0, le=86400.0,
                                     description="wall time an edge's uplink may take; later it is left out")
    train_timeout_s: float = Field(600.0, gt=0.0, le=86400.0,
                                   description="wall time an edge's local training may take; later it is left out")
    uplink_max_rounds: int = Field(30, ge=1, le=1000, description="repeat rounds of one uplink")
    trusted_edges_dir: str | None = Field(
        None, description="the host's trusted edge signing keys (NAME.sign); null: <control.curve.keys_dir>/"
                          "trusted-edges, where local edges put theirs")
    edge_signing_key: str | None = Field(
        None, description="an edge's Ed25519 secret key file; null: <control.curve.keys_dir>/<node>.sign_secret, "
                          "generated on first use")
    dp: DpConfig = DpConfig()

    @model_validator(mode="after")
    def _shard_in_range(self) -> "FedConfig":
        if self.shard_index is not None and self.shard_index >= self.edges:
            raise ValueError(f"fed.shard_index {self.shard_index} must be below fed.edges {self.edges}")
        return self
