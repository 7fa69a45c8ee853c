"""`airlora apply`: check the signature, rebuild, verify, install and evaluate an adapter payload on this edge node."""

from __future__ import annotations

import argparse
from pathlib import Path

from airlora.commands.common import (add_config_arguments, add_verbose_argument, emit_json, load_config,
                                     start_model_verb)
from testbed.errors import AirLoraError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("payload", help="payload file written by `airlora finetune`")
    add_config_arguments(parser)
    parser.add_argument("--no-eval", action="store_true", help="install without evaluating on the test split")
    parser.add_argument("--allow-unsigned", action="store_true",
                        help="also install an unsigned payload or one signed by an unknown key "
                             "(edge.allow_unsigned; throwaway runs only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_verbose_argument(parser)


def run(args: argparse.Namespace) -> int:
    start_model_verb(args)
    cfg = load_config(args)
    from edge_node.install import check_adapter_dir

    check_adapter_dir(cfg.edge.adapter_dir)
    if args.allow_unsigned:
        cfg = cfg.model_copy(update={"edge": cfg.edge.model_copy(update={"allow_unsigned": True})})
    try:
        payload = Path(args.payload).read_bytes()
    except OSError as exc:
        raise AirLoraError(f"{args.payload}: cannot read the payload ({exc.strerror})") from None
    from edge_node.pipeline import apply_payload

    report = apply_payload(cfg, payload, evaluate=not args.no_eval)
    if args.json:
        emit_json(report.to_dict())
    elif report.installed:
        acc = f", accuracy {report.accuracy:.3f}" if report.eval_s is not None else ""
        signed = f"signed by {report.signed_by}" if report.signed_by else "UNSIGNED"
        print(f"installed {report.adapter_dir} ({signed}, probe max abs err {report.probe_max_abs_err:.2g}{acc})")
    else:
        kept = report.adapter_dir or "nothing"
        print(f"refused: {report.reason} (still installed: {kept})")
    return 0 if report.installed else 3
