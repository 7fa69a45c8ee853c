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


def _stage_signed(root, text, signed_by):
    import json

    folder = _stage(root, text)
    (folder / inst.RECORD).write_text(json.dumps({"payload_sha256": text, "signed_by": signed_by}))
    return folder


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_pruning_never_loses_the_last_signed_version(tmp_path, keep):
    root = tmp_path / "edge"
    inst.install(_stage_signed(root, "s1", "ab" * 8), root, "s1", keep=keep)
    inst.install(_stage_signed(root, "s2", "ab" * 8), root, "s2", keep=keep)
    for i in range(4):  # unsigned installs (edge.allow_unsigned): more than keep
        inst.install(_stage_signed(root, f"u{i}", None), root, f"u{i}", keep=keep)
    names = sorted(p.name for p in (root / "versions").iterdir())
    assert inst.current_adapter(root).name == "u3"
    expected = {1: ["s2", "u3"], 2: ["s2", "u3"], 3: ["s1", "s2", "u3"]}[keep]  # signed ones before unsigned
    assert names == expected


def test_signed_installs_prune_the_oldest(tmp_path):
    root = tmp_path / "edge"
    for i in range(4):
        inst.install(_stage_signed(root, f"s{i}", "cd" * 8), root, f"s{i}", keep=2)
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["s2", "s3"]
    assert inst.is_signed(root / "versions" / "s3") and not inst.is_signed(root / "versions" / "nope")


def test_failed_reinstall_of_an_old_version_keeps_it(tmp_path, monkeypatch):
    root = tmp_path / "edge"
    inst.install(_stage(root, "a"), root, "a", keep=3)
    inst.install(_stage(root, "b"), root, "b", keep=3)

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        inst.install(_stage(root, "a2"), root, "a", keep=3)  # the same version again, not live
    monkeypatch.undo()
    assert inst.current_adapter(root).name == "b"
    assert (root / "versions" / "a" / "adapter_config.json").read_text() == "a"
    assert not [p for p in root.iterdir() if p.name.startswith(("staging-", ".current-"))]
