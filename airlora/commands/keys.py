"""`airlora keys`: write CurveZMQ key pairs (NAME.key public, NAME.key_secret private, mode 0600) and, for each
host, the Ed25519 pair that signs its payloads (NAME.sign public, NAME.sign_secret private, mode 0600)."""

from __future__ import annotations

import argparse
from pathlib import Path

from airlora.commands.common import add_config_arguments, emit_json, load_config
from testbed.errors import AirLoraError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="directory for the key files (default: control.curve.keys_dir)")
    parser.add_argument("--name", action="append", default=None, metavar="NAME",
                        help="key pair to write, e.g. edge or host (repeatable; default: edge and host)")
    parser.add_argument("--force", action="store_true", help="replace existing key files")
    parser.add_argument("--no-authorize", action="store_true",
                        help="do not copy host public keys into DIR/authorized (CurveZMQ) and DIR/trusted (payload "
                             "signing) when the edge's pair is written too")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object with the paths written")


def run(args: argparse.Namespace) -> int:
    from testbed.keys import (authorize, load_signing_secret, signing_pair_paths, trust_signing_key, write_keypair,
                              write_signing_keypair)

    out = _key_dir(args)
    names = args.name or ["edge", "host"]
    if len(set(names)) != len(names):
        raise AirLoraError(f"--name given twice: {names}")
    written = {name: write_keypair(out, name, force=args.force) for name in names}
    signing, kept = {}, []
    for name in (n for n in names if n != "edge"):  # hosts sign payloads; an existing pair (generated on first
        existing = signing_pair_paths(out, name)     # use) is kept unless --force: edges may already trust it
        if not args.force and existing.public.exists() and existing.secret.exists():
            load_signing_secret(existing.secret)
            signing[name], kept = existing, kept + [name]
        else:
            signing[name] = write_signing_keypair(out, name, force=args.force)
    authorized, trusted = [], []
    if "edge" in written and not args.no_authorize:
        # Both ends' keys in one place (one machine, CI): let the hosts in, as the default config expects.
        authorized = [authorize(paths.public, out / "authorized") for name, paths in written.items() if name != "edge"]
        trusted = [trust_signing_key(paths.public, out / "trusted") for paths in signing.values()]
    if args.json:
        emit_json({"keys": {n: {"public": str(p.public), "secret": str(p.secret)} for n, p in written.items()},
                   "signing": {n: {"public": str(p.public), "secret": str(p.secret), "kept": n in kept}
                               for n, p in signing.items()},
                   "authorized": [str(p) for p in authorized], "trusted": [str(p) for p in trusted]})
        return 0
    for name, paths in written.items():
        print(f"{name}: public {paths.public}, secret {paths.secret} (mode 600)")
    for name, paths in signing.items():
        how = "kept the existing" if name in kept else "wrote the"
        print(f"{name}: {how} payload signing pair: public {paths.public}, secret {paths.secret} (mode 600)")
    for path in authorized:
        print(f"authorized on the edge: {path}")
    for path in trusted:
        print(f"trusted by the edge: {path}")
    print("Two machines: copy edge.key to the host (control.curve.server_public_key), each host's NAME.key "
          "into the edge's control.curve.authorized_keys_dir and each host's NAME.sign into the edge's "
          "edge.trusted_keys_dir; secret files never leave their machine. "
          "Then set control.curve.enabled: true on both.")
    return 0


def _key_dir(args: argparse.Namespace) -> Path:
    """--out (or control.curve.keys_dir), created if missing; AirLoraError naming it when it is a file or unwritable."""
    source = "--out" if args.out else "control.curve.keys_dir"
    out = Path(args.out or load_config(args).control.curve.keys_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise AirLoraError(f"{source} {out}: is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AirLoraError(f"{source} {out}: cannot create the directory ({exc.strerror or exc})") from None
    return out
