"""The `airlora` command line: one module per verb under testbed/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from testbed.errors import AirLoraError

# verb -> module under testbed.commands; each module has add_arguments(parser) and run(args) -> int
VERBS: dict[str, str] = {
    "run": "Run the configured rounds end to end (the main job)",
    "link": "Send random bytes over the radio link and report delivery, SNR and goodput",
    "ber": "Uncoded BER of the full waveform receiver against theory",
    "bench": "Benchmarks that print figures (radio throughput)",
    "finetune": "Fine-tune LoRA with a rank vector (or AdaLoRA), quantize and write the adapter payload",
    "apply": "Rebuild, verify, install and evaluate an adapter payload on this edge node",
    "mcs-table": "Measure PER curves and write the MCS table used by link adaptation",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per verb (modules are imported lazily)."""
    parser = argparse.ArgumentParser(prog="airlora", description="AirLoRA Testbed")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, help_text in VERBS.items():
        module = importlib.import_module(f"testbed.commands.{verb.replace('-', '_')}")
        module.add_arguments(sub.add_parser(verb, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `airlora` console script."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"testbed.commands.{args.verb.replace('-', '_')}")
    try:
        return int(module.run(args) or 0)
    except AirLoraError as exc:
        print(f"airlora {args.verb}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"airlora {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
