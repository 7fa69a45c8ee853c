"""Key pairs: CurveZMQ pairs for the control plane and Ed25519 pairs that sign adapter payloads (`airlora keys`);
loading them with errors that name the file."""

from __future__ import annotations

from collections.abc import Callable

import datetime
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq
import zmq.auth

from radio.backends.zmq_iq import CableCurve
from testbed.errors import AirLoraError
from testbed.sections.control import CurveConfig

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

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
    source, target = _checked_copy_target(public_key, authorized_dir, load_public_key)
    _write(target, source.read_text(), 0o644)
    return target


def _checked_copy_target(public_key: str | Path, directory: str | Path,
                         check: Callable[[Path], object]) -> tuple[Path, Path]:
    """(source, target in `directory`) for copying a public key file, after `check` accepted it."""
    source = Path(public_key).expanduser()
    check(source)
    target_dir = Path(directory).expanduser()
    target_dir.mkdir(parents=True, exist_ok=True)
    return source, target_dir / source.name


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


def cable_curve(curve: CurveConfig, role: str) -> CableCurve | None:
    """CurveZMQ keys of this end of the radio.zmq IQ cable: the control plane's own key files, the edge's receiver
    the CURVE server (its pair, the authorized host keys), the host's transmitter a client (its pair, the edge's
    public key); None when control.curve is off (the cable is then in the clear, like the control plane)."""
    if not curve.enabled:
        return None
    if role == "rx":
        keys = server_keys(curve)
        authorized = frozenset(authorized_public_keys(keys.authorized_dir))
        return CableCurve(keys.public, keys.secret, authorized=authorized)
    if role == "tx":
        keys = client_keys(curve)
        return CableCurve(keys.public, keys.secret, server_public=keys.server_public)
    raise CurveKeyError(f"an IQ cable end is 'tx' or 'rx', got {role!r}")


# --- Ed25519 payload signing keys: NAME.sign (public, PEM) and NAME.sign_secret (PKCS#8 PEM, mode 0600) ---------
SIGN_PUBLIC_SUFFIX = ".sign"
SIGN_SECRET_SUFFIX = ".sign_secret"
MAX_KEY_FILE_BYTES = 16 << 10
MAX_TRUSTED_KEY_FILES = 1024


class SigningKeyError(AirLoraError):
    """A payload signing key file is missing, unreadable or not an Ed25519 key."""


def signing_pair_paths(out_dir: str | Path, name: str) -> KeyPairPaths:
    """out_dir/NAME.sign and out_dir/NAME.sign_secret."""
    out = Path(out_dir).expanduser()
    return KeyPairPaths(out / f"{name}{SIGN_PUBLIC_SUFFIX}", out / f"{name}{SIGN_SECRET_SUFFIX}")


def _create(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write path whole (a temporary file, then link or replace): a reader never sees half a key."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError when the file appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)


def write_signing_keypair(out_dir: str | Path, name: str, force: bool = False) -> KeyPairPaths:
    """Generate an Ed25519 signing pair as out_dir/NAME.sign and out_dir/NAME.sign_secret (0600)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                              PublicFormat)

    if not KEY_NAME.match(name):
        raise SigningKeyError(f"key name {name!r}: use letters, digits, '_', '-' or '.' (e.g. host, host2)")
    paths = signing_pair_paths(out_dir, name)
    paths.public.parent.mkdir(parents=True, exist_ok=True)
    for path in (paths.public, paths.secret):
        if path.exists() and not force:
            raise SigningKeyError(f"{path} already exists; pass --force to replace it")
    secret = Ed25519PrivateKey.generate()
    try:
        _create(paths.secret, secret.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600, force)
        _create(paths.public, secret.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
                0o644, force)
    except FileExistsError as exc:
        raise SigningKeyError(f"{exc.filename} appeared while it was being written; run again") from None
    return paths


def _read_pem(path: Path, what: str, hint: str) -> bytes:
    if not path.is_file():
        raise SigningKeyError(f"{what} not found: {path} ({hint})")
    try:
        size = path.stat().st_size
        if size > MAX_KEY_FILE_BYTES:
            raise SigningKeyError(f"{what} {path} is {size} bytes; a key file has at most {MAX_KEY_FILE_BYTES}")
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{what} {path} cannot be read ({exc.strerror})") from None


def load_signing_public(path: str | Path, what: str = "signing public key file") -> bytes:
    """The raw 32-byte Ed25519 public key in a NAME.sign file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    path = Path(path).expanduser()
    data = _read_pem(path, what, "copy the host's NAME.sign here")
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{what} {path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{what} {path} is not an Ed25519 key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_signing_secret(path: str | Path, what: str = "signing secret key file") -> bytes:
    """The raw 32-byte Ed25519 secret key in a NAME.sign_secret file; warns when others can read it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                              load_pem_private_key)

    path = Path(path).expanduser()
    data = _read_pem(path, what, f"create it with `airlora keys --out {path.parent}`")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{what} {path} is not an unencrypted PEM private key "
                              "(is it the public NAME.sign file?)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{what} {path} is not an Ed25519 key")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s is readable by other users; chmod 600 it", what, path)
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def trust_signing_key(public_key: str | Path, trusted_dir: str | Path) -> Path:
    """Copy a NAME.sign file (checked to be an Ed25519 public key) into an edge's trusted-keys directory."""
    source, target = _checked_copy_target(public_key, trusted_dir, load_signing_public)
    _create(target, source.read_bytes(), 0o644, force=True)
    return target


def trusted_signing_keys(trusted_dir: str | Path) -> dict[str, bytes]:
    """{name: raw public key} of the NAME.sign files in a trusted-keys directory ({} when it does not exist)."""
    directory = Path(trusted_dir).expanduser()
    if not directory.is_dir():
        return {}
    files = sorted(directory.glob(f"*{SIGN_PUBLIC_SUFFIX}"))
    if len(files) > MAX_TRUSTED_KEY_FILES:
        raise SigningKeyError(f"{directory} holds {len(files)} *{SIGN_PUBLIC_SUFFIX} files, more than the limit "
                              f"of {MAX_TRUSTED_KEY_FILES}")
    return {p.stem: load_signing_public(p, "trusted signing key file") for p in files}


def edge_trusted_dir(cfg: TestbedConfig) -> Path:
    """The edge's trusted signing keys: edge.trusted_keys_dir, or <control.curve.keys_dir>/trusted."""
    configured = cfg.edge.trusted_keys_dir
    return Path(configured if configured else Path(cfg.control.curve.keys_dir) / "trusted").expanduser()


def host_signing_secret(cfg: TestbedConfig) -> tuple[bytes, Path]:
    """(raw secret key, its file) that signs this host's payloads: finetune.signing_key, or by default
    <control.curve.keys_dir>/host.sign_secret, generated on first use and trusted by this machine's edge
    (edge_trusted_dir), so that a run on one machine needs no set-up. A configured file must exist."""
    configured = cfg.finetune.signing_key
    keys_dir = Path(cfg.control.curve.keys_dir).expanduser()
    path = Path(configured).expanduser() if configured else keys_dir / f"host{SIGN_SECRET_SUFFIX}"
    if configured is None and not path.exists():
        try:
            paths = write_signing_keypair(keys_dir, "host")
        except SigningKeyError:
            if not path.exists():  # not another process winning the race: a stray host.sign
                raise
        else:
            trusted = trust_signing_key(paths.public, edge_trusted_dir(cfg))
            log.warning("generated the payload signing key %s and trusted it for this machine's edge (%s)",
                        paths.secret, trusted)
    return load_signing_secret(path, "finetune.signing_key" if configured else "signing secret key file"), path


def host_trusted_edges_dir(cfg: TestbedConfig) -> Path:
    """The host's trusted edge signing keys (uplink adapters): fed.trusted_edges_dir, or
    <control.curve.keys_dir>/trusted-edges."""
    configured = cfg.fed.trusted_edges_dir
    return Path(configured if configured else Path(cfg.control.curve.keys_dir) / "trusted-edges").expanduser()


def edge_signing_secret(cfg: TestbedConfig, node_id: str) -> tuple[bytes, Path]:
    """(raw secret key, its file) that signs this edge's uplink adapters: fed.edge_signing_key, or by default
    <control.curve.keys_dir>/<node_id>.sign_secret, generated on first use and trusted by this machine's host
    (host_trusted_edges_dir), as host_signing_secret does the other way round. A configured file must exist."""
    configured = cfg.fed.edge_signing_key
    keys_dir = Path(cfg.control.curve.keys_dir).expanduser()
    path = Path(configured).expanduser() if configured else keys_dir / f"{node_id}{SIGN_SECRET_SUFFIX}"
    if configured is None and not path.exists():
        try:
            paths = write_signing_keypair(keys_dir, node_id)
        except SigningKeyError:
            if not path.exists():
                raise
        else:
            trusted = trust_signing_key(paths.public, host_trusted_edges_dir(cfg))
            log.warning("generated the uplink signing key %s and trusted it for this machine's host (%s)",
                        paths.secret, trusted)
    return load_signing_secret(path, "fed.edge_signing_key" if configured else "signing secret key file"), path
