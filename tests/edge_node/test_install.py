"""Atomic install: the `current` link only ever points at a complete folder; old versions are pruned."""

import os

import pytest

from edge_node import install as inst


def _stage(root, text):
    folder = inst.staging_dir(root)
    folder.mkdir()
    (folder / "adapter_config.json").write_text(text)
    return folder


def test_install_swap_and_prune(tmp_path):
    root = tmp_path / "edge"
    assert inst.current_adapter(root) is None
    for i in range(4):
        live = inst.install(_stage(root, f"v{i}"), root, f"v{i}", keep=2)
        assert inst.current_adapter(root) == live.resolve()
        assert (inst.current_adapter(root) / "adapter_config.json").read_text() == f"v{i}"
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["v2", "v3"]
    assert not [p for p in root.iterdir() if p.name.startswith(("staging-", ".current-"))]


def test_reinstalling_the_live_version_keeps_it(tmp_path):
    root = tmp_path / "edge"
    inst.install(_stage(root, "a"), root, "same")
    inst.install(_stage(root, "b"), root, "same")
    assert (inst.current_adapter(root) / "adapter_config.json").read_text() == "a"


def test_failure_during_swap_keeps_previous(tmp_path, monkeypatch):
    root = tmp_path / "edge"
    inst.install(_stage(root, "old"), root, "old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        inst.install(_stage(root, "new"), root, "new")
    assert (inst.current_adapter(root) / "adapter_config.json").read_text() == "old"
