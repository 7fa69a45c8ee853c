"""Build the base classifier the host and the edge share: same weights, same seeded head, same tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from adapters.identity import EMBEDDED, weight_source
from testbed.errors import AirLoraError
from testbed.sections.adapter import ModelConfig


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype() -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; None (plain fp32) on CPU."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _gguf_to_folder(gguf: Path, out: Path) -> Path:
    """Convert an embedded GGUF to a safetensors folder once (atomic: write aside, then rename)."""
    if (out / "config.json").exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # dequantized on load; transformers still marks it as a GGUF-quantized model
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.is_quantized = False
    except AttributeError:
        pass
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another process converted it first
        pass
    return out


def model_dir(cfg: ModelConfig) -> Path:
    """A folder from_pretrained loads: the embedded one, a converted GGUF, a local folder or a hub snapshot."""
    source = weight_source(cfg.name)
    if source.suffix == ".gguf":
        return _gguf_to_folder(source, Path(cfg.cache_dir).expanduser() / "models" / cfg.name)
    return source


def load_tokenizer(cfg: ModelConfig):
    """The model's tokenizer, with a pad token (decoders reuse EOS)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir(cfg))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def layer_placement(on: torch.device | None) -> dict:
    """from_pretrained's placement: on a GPU host accelerate places the layers (several GPUs are fine), else none.

    Weights load in fp32 either way; training autocasts to bf16 on a GPU.
    """
    return {"device_map": "auto"} if on is None and torch.cuda.is_available() else {}


def load_classifier(cfg: ModelConfig, num_labels: int, on: torch.device | None = None):
    """(model, tokenizer): the base model with a `num_labels` head initialised from cfg.head_seed."""
    folder = model_dir(cfg)
    tokenizer = load_tokenizer(cfg)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights were newly initialized" is expected here
    hf_logging.disable_progress_bar()
    try:
        placement = layer_placement(on)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=num_labels, dtype=torch.float32, output_loading_info=True, **placement)
    except (OSError, ValueError) as exc:
        raise AirLoraError(f"cannot load model {cfg.name!r} from {folder}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    seed_missing_weights(model, info["missing_keys"], cfg.head_seed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if not getattr(model, "hf_device_map", None):
        model.to(on or device())
    model.eval()
    return model, tokenizer


def seed_missing_weights(model: torch.nn.Module, missing: list[str], seed: int) -> None:
    """Initialise the parameters the checkpoint lacks (the head) from a CPU generator seeded with `seed`.

    The same on every host: with device_map the layers are initialised where accelerate puts them (a GPU's
    generator, another order), so the head would differ from a CPU edge's; here it is drawn on the CPU in the
    model's parameter order and copied to wherever each parameter lives. Weights ~ N(0, initializer_range),
    biases 0, norm scales 1, as transformers initialises them (and bit-identical to its CPU draw for one head).
    """
    wanted = set(missing)
    std = float(getattr(model.config, "initializer_range", 0.02))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name not in wanted:
                continue
            if name.endswith("bias"):
                value = torch.zeros(param.shape)
            elif param.ndim == 1:
                value = torch.ones(param.shape)
            else:
                value = torch.empty(param.shape).normal_(0.0, std, generator=generator)
            param.copy_(value.to(device=param.device, dtype=param.dtype))


def head_module_names(model) -> list[str]:
    """Names of the classification head modules (trained and shipped as modules_to_save)."""
    names = [n for n in ("classifier", "score") if hasattr(model, n)]
    if not names:
        raise AirLoraError(f"{type(model).__name__} has no classifier/score head")
    return names


def projection_shapes(model_cfg: ModelConfig, target_modules: list[str] | str,
                      num_labels: int) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The adaptable projections of the configured model and their (out_features, in_features) shapes."""
    from adapters.ranks import adaptable_modules, module_shapes

    model, _ = load_classifier(model_cfg, num_labels)
    modules = adaptable_modules(model, target_modules)
    return modules, module_shapes(model, modules)


__all__ = ["EMBEDDED", "autocast_dtype", "device", "head_module_names", "load_classifier", "load_tokenizer",
           "model_dir", "projection_shapes", "seed_missing_weights"]
