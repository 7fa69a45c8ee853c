"""CurveZMQ key pairs: write them (`airlora keys`), load them with errors that name the file."""

from __future__ import annotations

import datetime
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from testbed.errors import AirLoraError
from testbed.sections.control import CurveConfig

log = logging.getLogger("testbed.keys")

KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_BANNER = """#   ****  Generated on {now} by airlora keys  ****
#   ZeroMQ CURVE {what} Certificate
#   {advice}

"""


class CurveKeyError(AirLoraError):
    """A CurveZMQ key file is missing or unreadable, or this libzmq cannot do CURVE."""


@dataclass(frozen=True)
class KeyPairPaths:
    """Where one key pair was written: NAME.key (public) and NAME.key_secret (mode 0600)."""

    public: Path
    secret: Path


@dataclass(frozen=True)
class CurveServerKeys:
    """What the edge needs: its own key pair and the directory of authorized host public keys."""

    public: bytes
    secret: bytes
    authorized_dir: Path


@dataclass(frozen=True)
class CurveClientKeys:
    """What the host needs: its own key pair and the edge's public key."""

    public: bytes
    secret: bytes
    server_public: bytes


def require_curve() -> None:
    """Refuse clearly when this libzmq was built without CURVE (libsodium)."""
    if not zmq.has("curve"):
        raise CurveKeyError(
            f"control.curve.enabled is true but libzmq {zmq.zmq_version()} was built without CURVE support; "
            "install a pyzmq wheel (bundles libsodium) or set control.curve.enabled: false")


def _write(path: Path, text: str, mode: int) -> None:
    """Create path with the given mode from the start (no window where a secret is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def _key_text(what: str, advice: str, public: bytes, secret: bytes | None) -> str:
    now = datetime.datetime.now().isoformat(timespec="seconds")
    text = _BANNER.format(now=now, what=what, advice=advice)
    text += "metadata\ncurve\n"
    text += f'    public-key = "{public.decode("ascii")}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode("ascii")}"\n'
    return text


def write_keypair(out_dir: str | Path, name: str, force: bool = False) -> KeyPairPaths:
    """Generate a CURVE key pair as out_dir/NAME.key and out_dir/NAME.key_secret (0600)."""
    require_curve()
    if not KEY_NAME.match(name):
        raise CurveKeyError(f"key name {name!r}: use letters, digits, '_', '-' or '.' (e.g. edge, host, host2)")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths = KeyPairPaths(out / f"{name}.key", out / f"{name}.key_secret")
    for path in (paths.public, paths.secret):
        if path.exists() and not force:
            raise CurveKeyError(f"{path} already exists; pass --force to replace it")
    public, secret = zmq.curve_keypair()
    _write(paths.public, _key_text("**Public**", "This file can be copied to the peer.", public, None), 0o644)
    _write(paths.secret, _key_text("**Secret**", "Keep this file private: do not copy it or change its mode.",
                                   public, secret), 0o600)
    return paths


def authorize(public_key: str | Path, authorized_dir: str | Path) -> Path:
    """Copy a public key file into an authorized-keys directory (checked to be a public key)."""
    source = Path(public_key).expanduser()
    load_public_key(source)
    target_dir = Path(authorized_dir).expanduser()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    _write(target, source.read_text(), 0o644)
    return target


def _load(path: Path, what: str, hint: str) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveKeyError(f"{what} not found: {path} ({hint})")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CurveKeyError(f"{what} {path} is not a readable CurveZMQ key file ({exc})") from None
    if not public or len(public) != 40:
        raise CurveKeyError(f"{what} {path} holds no valid public-key")
    return public, secret


def load_public_key(path: str | Path, what: str = "public key file") -> bytes:
    """The Z85 public key in a NAME.key (or NAME.key_secret) file."""
    public, _ = _load(Path(path).expanduser(), what, "copy the peer's NAME.key here")
    return public


def load_secret_key(path: str | Path, what: str = "secret key file") -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file; warns when others can read it."""
    path = Path(path).expanduser()
    public, secret = _load(path, what, f"create it with `airlora keys --out {path.parent} --name {path.stem}`")
    if not secret or len(secret) != 40:
        raise CurveKeyError(f"{what} {path} holds no secret-key (is it the public NAME.key file?)")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s is readable by other users; chmod 600 it", what, path)
    return public, secret


def authorized_public_keys(authorized_dir: str | Path) -> list[bytes]:
    """The public keys in *.key files of an authorized-keys directory (refuses an empty one)."""
    directory = Path(authorized_dir).expanduser()
    if not directory.is_dir():
        raise CurveKeyError(f"authorized keys directory not found: {directory} "
                            "(create it and copy each host's NAME.key into it)")
    keys = [load_public_key(p, "authorized key file") for p in sorted(directory.glob("*.key"))]
    if not keys:
        raise CurveKeyError(f"no authorized host keys (*.key) in {directory}: copy each host's NAME.key into it")
    return keys


def server_keys(curve: CurveConfig) -> CurveServerKeys:
    """The edge's keys as control.curve names them (CurveKeyError naming a missing file)."""
    require_curve()
    public, secret = load_secret_key(curve.server_secret_path(), "control.curve.server_secret_key")
    authorized = curve.authorized_keys_path()
    authorized_public_keys(authorized)
    return CurveServerKeys(public=public, secret=secret, authorized_dir=authorized)


def client_keys(curve: CurveConfig) -> CurveClientKeys:
    """The host's keys as control.curve names them (CurveKeyError naming a missing file)."""
    require_curve()
    public, secret = load_secret_key(curve.client_secret_path(), "control.curve.client_secret_key")
    server_public = load_public_key(curve.server_public_path(), "control.curve.server_public_key")
    return CurveClientKeys(public=public, secret=secret, server_public=server_public)
