"""The `model:`, `data:`, `finetune:` and `edge:` sections of testbed.yaml (adapters: host and edge)."""

from typing import Literal

from pydantic import Field, field_validator

from testbed.sections.base import Section

MAX_LENGTH_RANGE = (8, 4096)
"""model.max_length bounds (a payload's max_length is held to them too)."""


class ModelConfig(Section):
    """The base model both the host and the edge build (they must build the same one)."""

    name: str = Field("minilm-l6", min_length=1,
                      description="minilm-l6 | smollm2-135m (embedded) | a Hugging Face id | a local folder")
    max_length: int = Field(64, ge=MAX_LENGTH_RANGE[0], le=MAX_LENGTH_RANGE[1],
                            description="tokens per example (longer inputs are truncated)")
    head_seed: int = Field(0, ge=0, description="seed of the randomly initialised classification head")
    cache_dir: str = Field("~/.cache/airlora", description="converted models (GGUF -> safetensors) and hashes")


class DataConfig(Section):
    """The classification task and its deterministic train / validation / test splits."""

    task: str = Field("rotten_tomatoes", description="rotten_tomatoes | bbc_news | hf:<dataset>[/<config>]")
    train_size: int = Field(2000, ge=1, description="training examples")
    val_size: int = Field(500, ge=0, description="validation examples")
    test_size: int = Field(1000, ge=1, description="test examples (host and edge evaluate on the same ones)")
    seed: int = Field(0, ge=0, description="seed of the split shuffle")
    probe_count: int = Field(4, ge=1, le=64, description="test texts whose logits travel in the manifest")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in ("rotten_tomatoes", "bbc_news") and not value.startswith("hf:"):
            raise ValueError("must be rotten_tomatoes, bbc_news or hf:<dataset>[/<config>]")
        return value


class FinetuneConfig(Section):
    """LoRA fine-tuning with one rank per adapted projection, and how the adapter is shipped."""

    ranks: str = Field("uniform:8", description="rank vector: uniform:<r> or a JSON file {module: rank}")
    alpha_mode: Literal["fixed", "rslora", "standard", "rmax"] = Field(
        "rslora", description="LoRA scaling per module: fixed alpha; rslora alpha/sqrt(r); standard alpha/r; "
                             "rmax alpha/r_max (the paper)")
    alpha: float = Field(5.657, gt=0.0, le=1.0e4, description="the alpha of alpha_mode's scaling rule")
    target_modules: list[str] | Literal["auto"] = Field(
        "auto", description="projection kinds to adapt, e.g. [query, key, value, dense]; auto picks per model")
    steps: int = Field(125, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, le=4096, description="examples per step")
    lr: float = Field(1.0e-3, gt=0.0, lt=1.0, description="AdamW learning rate")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout")
    seed: int = Field(0, ge=0, description="seed of adapter init and batch order")
    quant: Literal["none", "fp16", "int8", "nf4", "fp4"] = Field("nf4", description="adapter quantization")
    block_size: int = Field(64, ge=16, le=4096, description="elements per quantization block (int8, nf4, fp4)")
    double_quant: bool = Field(True, description="8-bit block scales, one fp32 pair per 256 blocks, compressed "
                                                 "manifest (payload format 2); false: format 1 (fp32 scales)")
    adalora_target_rank: int = Field(4, ge=1, le=1024, description="AdaLoRA average rank budget (--adalora)")
    signing_key: str | None = Field(
        None, description="host: Ed25519 secret key file that signs every payload (default "
                          "<control.curve.keys_dir>/host.sign_secret, generated on first use)")


class EdgeConfig(Section):
    """Where the edge node keeps its installed adapters, and whose payloads it installs."""

    adapter_dir: str = Field("~/.cache/airlora/edge", description="installed adapters; `current` names the live one")
    keep_previous: int = Field(2, ge=1, le=100, description="installed adapter versions kept on disk (signed "
                                                           "versions are kept before unsigned ones)")
    trusted_keys_dir: str | None = Field(
        None, description="host signing public keys (NAME.sign) whose payloads this edge installs "
                          "(default <control.curve.keys_dir>/trusted)")
    allow_unsigned: bool = Field(False, description="also install unsigned payloads, or ones signed by an unknown "
                                                    "key (throwaway loopback runs only)")
    allow_insecure_bind: bool = Field(False, description="let the edge bind a non-loopback control address with "
                                                         "control.curve.enabled false (an isolated bench only)")
    max_payload_bytes: int = Field(128 << 20, ge=1024, le=4 << 30,
                                   description="largest payload a session may announce (the edge holds it in memory)")
    max_packets: int = Field(1 << 17, ge=1, le=1 << 24,
                             description="most packets one session may announce (reassembly and repair lists)")
    max_adapter_elements: int = Field(
        1 << 25, ge=1, le=1 << 31, description="fp32 values a payload's tensors may hold in all, checked on the "
                                               "manifest before anything is dequantized (4 bytes each)")
    max_num_labels: int = Field(1024, ge=2, le=1 << 20,
                                description="largest classifier head (num_labels) a payload may ask the edge to build")
    reassembly_memory_bytes: int = Field(
        64 << 20, ge=0, le=4 << 30, description="frame v2: payload bytes held in memory while they arrive; a larger "
                                                "payload is spilled to a file under <adapter_dir>/.reassembly")
    frames: list[Literal["v1", "v2"]] = Field(
        default_factory=lambda: ["v1", "v2"], min_length=1, max_length=2,
        description="frames this edge receives; it lists frame:v2 in its hello when v2 is here (['v1']: as an "
                    "edge that predates v2)")
    erase_fraction: float = Field(0.0, ge=0.0, le=0.9,
                                  description="emulation: drop this fraction of the packets that passed their CRC, "
                                              "at random (benchmarks of erasures); 0 on a real edge")
