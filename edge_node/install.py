"""Atomic install of adapter folders: build aside, then swap the `current` link with one rename (torch-free).

Layout under the edge's adapter_dir:
    versions/<sha12>/    one complete peft folder per installed payload
    current -> versions/<sha12>   (a relative symlink, replaced atomically)
    staging-*/           folders being built (or a replaced version on its way out); never read; removed on failure

Pruning keeps signed versions before unsigned ones (edge.allow_unsigned installs) and never the last signed
one; a refused payload never reaches install, so it cannot push a version out.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from testbed.errors import AirLoraError

RECORD = "airlora_manifest.json"  # written by adapters.rebuild: the manifest, the payload SHA-256, signed_by
MAX_RECORD_BYTES = 32 << 20


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
    """Move a verified staging folder to versions/<version> and point `current` at it atomically.

    On any failure the previous state stays: `current` and every installed version are as they were.
    """
    root = Path(adapter_dir).expanduser()
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / version
    replaced = None
    if final.exists():  # the same payload again: replace its folder unless it is the live one
        if current_adapter(root) == final.resolve():
            discard(staged)
            return final
        replaced = root / f"staging-{os.getpid()}-old-{uuid.uuid4().hex[:8]}"  # daemon leftovers cleanup knows it
        os.rename(final, replaced)
    tmp_link = root / f".current-{uuid.uuid4().hex[:8]}"
    moved = False
    try:
        os.rename(staged, final)
        moved = True
        os.utime(final)  # the install time orders versions for pruning
        os.symlink(os.path.join("versions", version), tmp_link)
        os.replace(tmp_link, root / "current")  # the one atomic step
    except BaseException:
        if tmp_link.is_symlink():
            tmp_link.unlink()
        if moved:
            discard(final)
        if replaced is not None:
            os.rename(replaced, final)
        raise
    if replaced is not None:
        discard(replaced)
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


def is_signed(folder: Path) -> bool:
    """Whether an installed version came from a signed payload (its airlora_manifest.json names a key id)."""
    record = folder / RECORD
    try:
        if record.stat().st_size > MAX_RECORD_BYTES:
            return False
        return bool(json.loads(record.read_text()).get("signed_by"))
    except (OSError, ValueError, AttributeError):
        return False


def _prune(versions: Path, live: Path, keep: int) -> None:
    """Keep `keep` folders in all: the live version, then the newest signed others, then the newest unsigned
    ones; and always the newest signed version, so installs never lose the last adapter the lab signed."""
    others = sorted((p for p in versions.iterdir() if p.is_dir() and p != live and not p.name.startswith(".")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    signed = [p for p in others if is_signed(p)]
    unsigned = [p for p in others if p not in signed]
    kept = (signed + unsigned)[:max(0, keep - 1)]
    if signed and not is_signed(live) and signed[0] not in kept:
        kept.append(signed[0])
    for old in others:
        if old not in kept:
            discard(old)


class AdapterDirError(AirLoraError):
    """edge.adapter_dir cannot hold adapters: it is a file, or not writable."""


def check_adapter_dir(adapter_dir: str | Path) -> Path:
    """edge.adapter_dir, checked without writing to it: AdapterDirError naming it when it (or the folder it would
    be created in) is a file or not writable. The folder itself is created by the first install."""
    root = Path(adapter_dir).expanduser()
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == root else f"{existing} "
        raise AdapterDirError(f"edge.adapter_dir {root}: {where}is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=existing))  # what os.access cannot tell: ACLs, read-only mounts
    except OSError as exc:
        raise AdapterDirError(f"edge.adapter_dir {root}: {existing} is not writable ({exc.strerror or exc})") from None
    return root
