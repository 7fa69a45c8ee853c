"""An edge's local round of federated fine-tuning: its own shard, from the installed global adapter, packed and
signed with the edge's key, with its local accuracy.

The shard is the edge's own data: fed.shard_index of fed.edges shards of the task's training split (fed.shards,
fed.dirichlet_alpha, fed.shard_seed). The starting point is the global adapter the edge installed (verified as
every payload is), re-projected to the ranks the host assigned (ml.aggregate.truncate); round 1 starts from the
base model. Training is ml.finetune.train_lora; packing is ml.pack.pack_adapter, as on the host.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.config import TestbedConfig
from testbed.errors import AirLoraError


@dataclass
class LocalResult:
    """What one local round produced: the signed payload and its figures."""

    payload: bytes
    payload_sha256: str
    samples: int
    local_accuracy: float
    train_s: float
    final_loss: float | None
    ranks: dict[str, int]


def installed_global(folder: Path | None, expected_sha256: str | None):
    """The installed adapter as an ml.adapter.Adapter when its payload SHA-256 is the expected one; None for round
    1 (expected None); AirLoraError when the edge does not hold the adapter the host means."""
    if expected_sha256 is None:
        return None
    if folder is None:
        raise AirLoraError(f"no adapter installed; the host expects global adapter {expected_sha256[:16]}")
    record = json.loads((folder / "airlora_manifest.json").read_text())
    if record.get("payload_sha256") != expected_sha256:
        raise AirLoraError(f"installed adapter {str(record.get('payload_sha256'))[:16]} is not the global adapter "
                           f"{expected_sha256[:16]} the host expects")
    from safetensors.numpy import load_file

    from ml.adapter import from_tensors

    peft = record["peft"]
    return from_tensors(peft["modules"], load_file(str(folder / "adapter_model.safetensors")), peft["modules_to_save"],
                        peft.get("dropout", 0.0))


def my_shard(cfg: TestbedConfig, splits) -> list:
    """This edge's training examples (fed.shard_index of fed.edges)."""
    from ml.shards import shard_indices

    f = cfg.fed
    if f.shard_index is None:
        raise AirLoraError("fed.shard_index is not set: this edge holds no shard of the training data")
    shards = shard_indices([y for _, y in splits.train], f.edges, f.shards, f.dirichlet_alpha, f.shard_seed,
                           min_examples=min(cfg.finetune.batch_size, len(splits.train) // f.edges))
    return [splits.train[i] for i in shards[f.shard_index]]


def train_local(cfg: TestbedConfig, ranks: dict[str, int], steps: int, seed: int, global_folder: Path | None,
                start_sha256: str | None, signing_key: bytes) -> LocalResult:
    """Fine-tune on this edge's shard from the global adapter, evaluate, pack and sign."""
    from adapters import ranks as rk
    from adapters.identity import model_identity
    from ml.aggregate import truncate
    from ml.data import load_task
    from ml.evaluate import accuracy, logits
    from ml.finetune import train_lora
    from ml.models import head_module_names, load_classifier
    from ml.pack import pack_adapter, probe_texts

    start = installed_global(global_folder, start_sha256)
    splits = load_task(cfg.data)
    shard = my_shard(cfg, splits)
    model, tokenizer = load_classifier(cfg.model, splits.num_labels)
    modules = rk.adaptable_modules(model, cfg.finetune.target_modules)
    ranks = rk.parse_ranks(ranks, modules)
    ft_cfg = cfg.finetune.model_copy(update={"seed": seed})
    init = None
    if start is not None:
        alpha = rk.alphas(ranks, ft_cfg.alpha_mode, ft_cfg.alpha)
        start.info["shapes"] = rk.module_shapes(model, modules)
        init = truncate(start, ranks, {m: alpha[m] / r for m, r in ranks.items() if r > 0}, seed)
    max_len = cfg.model.max_length
    t0 = time.perf_counter()
    result = train_lora(model, tokenizer, shard, ranks, ft_cfg, head_module_names(model), max_len, steps, init=init)
    train_s = time.perf_counter() - t0
    local_acc = accuracy(result.model, tokenizer, splits.test[: cfg.fed.eval_examples], max_len)
    logits_fp32 = logits(result.model, tokenizer, probe_texts(cfg, splits), max_len)
    packed = pack_adapter(cfg, model_identity(cfg.model.name, cfg.model.cache_dir), splits, result.adapter,
                          cfg.finetune.quant, "fed-local", tokenizer, logits_fp32, cfg.finetune.double_quant,
                          signing_key)
    return LocalResult(packed.payload, packed.payload_sha256, len(shard), local_acc, train_s,
                       result.losses[-1] if result.losses else None, result.adapter.ranks)
