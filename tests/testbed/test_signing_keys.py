"""Payload signing keys (`airlora keys`, the host key generated on first use, the edge's trust store) and the
edge's refusal to bind a control port other machines can reach without CurveZMQ."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.signing import key_id, public_key
from airlora import cli
from testbed.config import validate
from testbed.control.server import ControlServer, is_loopback, refuse_insecure_bind
from testbed.errors import ConfigError
from testbed.keys import (SigningKeyError, edge_trusted_dir, host_signing_secret, load_signing_public,
                          load_signing_secret, trusted_signing_keys, write_signing_keypair)
from testbed.sections.control import ControlConfig, CurveConfig

ROOT = Path(__file__).resolve().parents[2]


def test_keys_command_writes_the_signing_pair_and_trusts_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["keys", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["signing"]) == {"host"}  # hosts sign; the edge only verifies
    public, secret = tmp_path / "host.sign", tmp_path / "host.sign_secret"
    assert out["signing"]["host"] == {"public": str(public), "secret": str(secret), "kept": False}
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in public.read_text() and "PRIVATE KEY" in secret.read_text()
    assert public_key(load_signing_secret(secret)) == load_signing_public(public)
    assert out["trusted"] == [str(tmp_path / "trusted" / "host.sign")]
    assert trusted_signing_keys(tmp_path / "trusted") == {"host": load_signing_public(public)}
    assert not (tmp_path / "authorized" / "host.sign").exists()  # CurveZMQ's authorized/ holds *.key only

    # Another host: its own pair; an existing pair is kept (edges may trust it already) unless --force.
    first = secret.read_bytes()
    assert cli.main(["keys", "--out", str(tmp_path / "h2"), "--name", "host2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signing"]["host2"]["kept"] is False
    assert (tmp_path / "h2" / "host2.sign_secret").exists() and not (tmp_path / "h2" / "trusted").exists()
    assert cli.main(["keys", "--out", str(tmp_path), "--force"]) == 0
    assert "wrote the payload signing pair" in capsys.readouterr().out and secret.read_bytes() != first


def test_keys_command_keeps_a_signing_key_generated_on_first_use(tmp_path: Path, capsys) -> None:
    cfg = validate({"control": {"curve": {"keys_dir": str(tmp_path)}}})
    generated, _ = host_signing_secret(cfg)
    assert cli.main(["keys", "--out", str(tmp_path)]) == 0
    assert "kept the existing payload signing pair" in capsys.readouterr().out
    assert load_signing_secret(tmp_path / "host.sign_secret") == generated


def test_host_key_is_generated_on_first_use_and_trusted_by_the_local_edge(tmp_path: Path, caplog) -> None:
    cfg = validate({"control": {"curve": {"keys_dir": str(tmp_path / "keys")}}})
    assert edge_trusted_dir(cfg) == tmp_path / "keys" / "trusted"
    secret, path = host_signing_secret(cfg)
    assert path == tmp_path / "keys" / "host.sign_secret" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated the payload signing key" in caplog.text
    assert trusted_signing_keys(edge_trusted_dir(cfg)) == {"host": public_key(secret)}
    assert host_signing_secret(cfg) == (secret, path)  # the second use loads it

    # An edge with its own trusted dir: the generated key goes there.
    other = validate({"control": {"curve": {"keys_dir": str(tmp_path / "k2")}},
                      "edge": {"trusted_keys_dir": str(tmp_path / "edge-trust")}})
    secret2, _ = host_signing_secret(other)
    assert trusted_signing_keys(tmp_path / "edge-trust") == {"host": public_key(secret2)}
    assert key_id(public_key(secret2)) != key_id(public_key(secret))

    # A configured key must exist: nothing is generated in its place.
    configured = validate({"finetune": {"signing_key": str(tmp_path / "nope.sign_secret")},
                           "control": {"curve": {"keys_dir": str(tmp_path / "k3")}}})
    with pytest.raises(SigningKeyError, match="^finetune.signing_key not found: .*nope.sign_secret"):
        host_signing_secret(configured)
    assert not (tmp_path / "k3").exists()


def test_bad_key_files_are_named(tmp_path: Path) -> None:
    paths = write_signing_keypair(tmp_path, "host")
    with pytest.raises(SigningKeyError, match="already exists"):
        write_signing_keypair(tmp_path, "host")
    with pytest.raises(SigningKeyError, match="is it the public NAME.sign file"):
        load_signing_secret(paths.public)
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_signing_public(tmp_path / "host.sign_secret")
    big = tmp_path / "big.sign"
    big.write_bytes(b"x" * (64 << 10))
    with pytest.raises(SigningKeyError, match="is 65536 bytes"):
        load_signing_public(big)
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "junk.sign").write_text("not a key")
    with pytest.raises(SigningKeyError, match="trusted signing key file .*junk.sign is not a PEM public key"):
        trusted_signing_keys(tmp_path / "trusted")
    assert trusted_signing_keys(tmp_path / "missing") == {}
    with pytest.raises(SigningKeyError, match="key name"):
        write_signing_keypair(tmp_path, "../evil")


# --- binding the control port --------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.0.0.2:*", True), ("tcp://localhost:5555", True),
    ("tcp://[::1]:5555", True), ("ipc:///tmp/edge", True), ("inproc://edge", True),
    ("tcp://*:5555", False), ("tcp://0.0.0.0:5555", False), ("tcp://192.168.1.5:5555", False),
    ("tcp://eth0:5555", False), ("tcp://[::]:5555", False), ("tcp://edge.lab:5555", False)])
def test_is_loopback(endpoint: str, local: bool) -> None:
    assert is_loopback(endpoint) is local


def test_non_loopback_bind_needs_curve_or_an_explicit_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^control bind address tcp://\\*:5555 is reachable from other machines .*"
                                          "edge.allow_insecure_bind: true$"):
        refuse_insecure_bind("tcp://*:5555", curve_enabled=False, allow_insecure_bind=False)
    refuse_insecure_bind("tcp://*:5555", curve_enabled=True, allow_insecure_bind=False)
    refuse_insecure_bind("tcp://127.0.0.1:5555", curve_enabled=False, allow_insecure_bind=False)
    with pytest.raises(ConfigError, match="reachable from other machines"):
        ControlServer.from_config(ControlConfig(bind="tcp://0.0.0.0:*"))
    server = ControlServer.from_config(ControlConfig(bind="tcp://0.0.0.0:*"), allow_insecure_bind=True)
    server.close()
    assert cli.main(["keys", "--out", str(tmp_path)]) == 0
    curve = CurveConfig(enabled=True, keys_dir=str(tmp_path))
    server = ControlServer.from_config(ControlConfig(bind="tcp://0.0.0.0:*", curve=curve))
    assert server.curve
    server.close()


def test_edge_process_refuses_a_lab_bind_without_curve(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [sys.executable, "-m", "airlora.cli", "edge", "--max-s", "5", "--set", "control.bind=tcp://*:5555",
            "--set", f"model.cache_dir={tmp_path / 'cache'}", "--set", f"edge.adapter_dir={tmp_path / 'edge'}"]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith(
        "airlora edge: control bind address tcp://*:5555 is reachable from other machines")


def test_lab_configs_for_a_remote_edge_have_curve_on() -> None:
    """Every config under configs/ that runs against a remote edge, or binds beyond loopback, has CurveZMQ."""
    import yaml

    from testbed.config import load

    lab = 0
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load(path)
        raw = yaml.safe_load(path.read_text()) or {}
        remote = cfg.run.edge == "remote" or not is_loopback(cfg.control.bind_endpoint)
        if remote:
            lab += 1
            assert cfg.control.curve.enabled, f"{path.name}: a remote edge with control.curve.enabled false"
            assert not cfg.edge.allow_insecure_bind and not cfg.edge.allow_unsigned, path.name
            assert "edge" not in raw or "allow_unsigned" not in raw["edge"], path.name
    assert lab >= 2  # configs/lab_edge.yaml and configs/lab_host.yaml
