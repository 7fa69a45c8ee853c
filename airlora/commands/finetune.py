"""`airlora finetune`: fine-tune with a rank vector (or AdaLoRA), quantize, and write the adapter payload."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from airlora.commands.common import (add_config_arguments, add_verbose_argument, emit_json, load_config,
                                     start_model_verb)
from testbed.errors import AirLoraError

QUANTS = ("none", "fp16", "int8", "nf4", "fp4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--ranks", default=None, help="rank vector: uniform:<r> (default: finetune.ranks)")
    how.add_argument("--ranks-file", default=None, help="JSON file {module: rank} (0 = not adapted)")
    how.add_argument("--adalora", action="store_true", help="the AdaLoRA baseline instead of a fixed rank vector")
    parser.add_argument("--target-rank", type=int, default=None, help="AdaLoRA average rank budget")
    parser.add_argument("--quant", choices=QUANTS, default=None, help="adapter quantization (default: finetune.quant)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: finetune.steps)")
    parser.add_argument("--out", required=True, help="where to write the payload (signed with finetune.signing_key)")
    parser.add_argument("--unsigned", action="store_true",
                        help="do not sign the payload (only an edge with edge.allow_unsigned installs it)")
    parser.add_argument("--report", default=None, help="also write the JSON report to this file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_verbose_argument(parser)


def run(args: argparse.Namespace) -> int:
    start_model_verb(args)
    cfg = load_config(args)
    if args.steps is not None and args.steps < 1:
        raise AirLoraError("--steps must be >= 1")
    if args.target_rank is not None and not args.adalora:
        raise AirLoraError("--target-rank goes with --adalora")
    from host.pipeline import finetune_and_pack
    from testbed.keys import host_signing_secret

    signing_key = None if args.unsigned else host_signing_secret(cfg)[0]
    payload, report = finetune_and_pack(
        cfg, ranks=args.ranks_file or args.ranks, quant=args.quant, steps=args.steps,
        adalora_target_rank=(args.target_rank or cfg.finetune.adalora_target_rank) if args.adalora else None,
        signing_key=signing_key)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, out)
    report["out"] = str(out)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1, default=float))
    if args.json:
        emit_json(report)
    else:
        active = {m: r for m, r in report["ranks"].items() if r}
        print(f"{report['method']} on {report['model']} / {report['task']}: accuracy {report['accuracy_before']:.3f}"
              f" -> {report['accuracy_after']:.3f} (after {report['quant']}: {report['accuracy_after_quant']:.3f})")
        print(f"adapted {len(active)} of {len(report['ranks'])} projections, ranks {sorted(set(active.values()))}, "
              f"{report['trainable_params']} trainable parameters, {report['train_s']:.1f} s training")
        signed = f"signed by key {report['signed_by']}" if report["signed_by"] else "unsigned"
        print(f"payload {report['payload_bytes']} bytes ({report['fp32_bytes']} bytes in fp32, "
              f"{report['compression']:.1f}x smaller, {signed}) -> {out}")
    return 0
