"""Atomic install of adapter folders: build aside, then swap the `current` link with one rename (torch-free).

Layout under the edge's adapter_dir:
    versions/<sha12>/    one complete peft folder per installed payload
    current -> versions/<sha12>   (a relative symlink, replaced atomically)
    staging-*/           folders being built; never read; removed on failure
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def current_adapter(adapter_dir: str | Path) -> Path | None:
    """The installed adapter folder, or None when nothing is installed."""
    link = Path(adapter_dir).expanduser() / "current"
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def staging_dir(adapter_dir: str | Path) -> Path:
    """A fresh folder to build an adapter in, next to the installed ones (same filesystem)."""
    root = Path(adapter_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root / f"staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def discard(folder: Path) -> None:
    """Remove a staging folder (ignore if gone)."""
    shutil.rmtree(folder, ignore_errors=True)


def install(staged: Path, adapter_dir: str | Path, version: str, keep: int = 2) -> Path:
    """Move a verified staging folder to versions/<version> and point `current` at it atomically."""
    root = Path(adapter_dir).expanduser()
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / version
    if final.exists():  # the same payload again: replace its folder unless it is the live one
        if current_adapter(root) == final.resolve():
            discard(staged)
            return final
        discard(final)
    os.rename(staged, final)
    tmp_link = root / f".current-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.join("versions", version), tmp_link)
    os.replace(tmp_link, root / "current")  # the one atomic step
    _fsync_dir(root)
    _prune(versions, final, keep)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prune(versions: Path, live: Path, keep: int) -> None:
    """Keep the live version and the newest others, `keep` folders in all."""
    others = sorted((p for p in versions.iterdir() if p.is_dir() and p != live), key=lambda p: p.stat().st_mtime,
                    reverse=True)
    for old in others[max(0, keep - 1):]:
        discard(old)
