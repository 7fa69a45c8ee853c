"""The `policy:` section: the rank-policy decision problem, its environments and the PPO / DDIM trainers."""

from typing import Literal

from pydantic import Field, field_validator

from testbed.sections.base import Section


class PolicyConfig(Section):
    """Training and evaluating rank policies (`airlora train-policy`, `airlora sweep`)."""

    env: Literal["real", "surrogate"] = Field(
        "surrogate", description="real: every step is a real LoRA fine-tune; surrogate: a model fitted on real ones")
    episodes: int = Field(200, ge=1, le=1000000, description="training episodes")
    episode_steps: int = Field(15, ge=1, le=10000, description="environment steps per episode (the paper: 15)")
    seeds: int = Field(3, ge=1, le=100, description="seeds per sweep cell (and policies trained per seed)")
    seed: int = Field(0, ge=0, description="seed of training (network init, sampling, SNR draws)")
    r_max: int = Field(16, ge=1, le=1024, description="largest rank per projection (0 leaves it out)")
    cost: Literal["real", "shannon"] = Field(
        "real", description="real: airtime at the MCS the link picks, framing and FEC included; shannon: the paper's")
    cost_weight: float = Field(0.005, ge=0.0, description="reward = -loss - cost_weight * airtime_s / 1 s "
                               "(calibrated: `airlora calibrate`, policy/README.md)")
    deadline_s: float = Field(8.0, gt=0.0, description="airtime budget of one delivery; missing it is penalized")
    deadline_penalty: float = Field(10.0, ge=0.0, description="reward penalty when the adapter misses the deadline")
    snr_db_range: list[float] = Field([-5.0, 20.0], min_length=2, max_length=2,
                                      description="training SNRs are drawn from this range [dB]")
    snr_noise_db: float = Field(0.5, ge=0.0, description="std of the edge's SNR estimate around the channel's SNR")
    latent_dim: int = Field(16, ge=1, le=1024, description="PPO latent that conditions the DDIM denoiser")
    hidden: int = Field(256, ge=8, le=8192, description="width of the PPO actor and critic layers")
    lr: float = Field(1.0e-3, gt=0.0, lt=1.0, description="PPO learning rate (both learners)")
    ddim_lr: float = Field(2.0e-3, gt=0.0, lt=1.0, description="denoiser learning rate")
    ddim_train_steps: int = Field(1000, ge=10, le=100000, description="diffusion steps of the training noise schedule")
    ddim_sample_steps: int = Field(50, ge=1, le=100000, description="DDIM sampling steps (eta 0)")
    guidance: float = Field(1.5, ge=0.0, description="classifier-free guidance scale")
    cond_dropout: float = Field(0.1, ge=0.0, le=1.0, description="condition dropout while training the denoiser")
    candidates: int = Field(16, ge=1, le=1024,
                            description="rank vectors the denoiser proposes per decision; a reward critic picks one")
    checkpoint: str = Field("runs/policy/airllm.pt", description="checkpoint train-policy writes and airllm loads")
    surrogate_data: str = Field("policy/data/minilm_rt_finetunes.json",
                                description="real fine-tunes the surrogate is fitted on (relative: to the repository)")
    real_steps: int = Field(100, ge=1, description="fine-tuning steps of one real-environment step")
    real_train_subset: int = Field(1200, ge=16, description="training examples of one real-environment step")
    real_eval_size: int = Field(1000, ge=16, description="test examples one real-environment step evaluates on")
    out_dir: str = Field("runs", description="results go to <out_dir>/<kind>-<timestamp>/")

    @field_validator("snr_db_range")
    @classmethod
    def _snr_range(cls, value: list[float]) -> list[float]:
        low, high = value
        if not -30.0 <= low <= high <= 60.0:
            raise ValueError("must be [low, high] with -30 <= low <= high <= 60 dB")
        return value
