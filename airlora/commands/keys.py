"""`airlora keys`: write CurveZMQ key pairs (NAME.key public, NAME.key_secret private, mode 0600)."""

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
                        help="do not copy host public keys into DIR/authorized when the edge's pair is written too")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object with the paths written")


def run(args: argparse.Namespace) -> int:
    from testbed.keys import authorize, write_keypair

    out = Path(args.out).expanduser() if args.out else Path(load_config(args).control.curve.keys_dir).expanduser()
    names = args.name or ["edge", "host"]
    if len(set(names)) != len(names):
        raise AirLoraError(f"--name given twice: {names}")
    written = {name: write_keypair(out, name, force=args.force) for name in names}
    authorized = []
    if "edge" in written and not args.no_authorize:
        # Both ends' keys in one place (one machine, CI): let the hosts in, as the default config expects.
        authorized = [authorize(paths.public, out / "authorized") for name, paths in written.items() if name != "edge"]
    if args.json:
        emit_json({"keys": {n: {"public": str(p.public), "secret": str(p.secret)} for n, p in written.items()},
                   "authorized": [str(p) for p in authorized]})
        return 0
    for name, paths in written.items():
        print(f"{name}: public {paths.public}, secret {paths.secret} (mode 600)")
    for path in authorized:
        print(f"authorized on the edge: {path}")
    print("Two machines: copy edge.key to the host (control.curve.server_public_key) and each host's "
          "NAME.key into the edge's control.curve.authorized_keys_dir; secret files never leave their machine. "
          "Then set control.curve.enabled: true on both.")
    return 0
