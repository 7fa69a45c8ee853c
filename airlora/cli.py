"""The `airlora` command line: one module per verb under airlora/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from testbed import progress
from testbed.errors import AirLoraError

# verb -> module under airlora.commands; each module has add_arguments(parser) and run(args) -> int
VERBS: dict[str, str] = {
    "run": "Run the configured rounds end to end (the main job)",
    "edge": "Run the edge daemon: receive, verify, install and evaluate adapters, report to the host",
    "link": "Send random bytes over the radio link and report delivery, SNR and goodput",
    "ber": "Uncoded BER of the full waveform receiver against theory",
    "bench": "Benchmarks that print figures (radio throughput)",
    "finetune": "Fine-tune LoRA with a rank vector (or AdaLoRA), quantize and write the adapter payload",
    "apply": "Rebuild, verify, install and evaluate an adapter payload on this edge node",
    "mcs-table": "Measure PER (conv) or BLER (ldpc) curves: the MCS tables link adaptation uses",
    "keys": "Write CurveZMQ key pairs for the control plane (edge, host)",
    "train-policy": "Train the hierarchical PPO + CFG-DDIM rank policy (and vanilla PPO) on the real or surrogate env",
    "calibrate": "Check the reward's accuracy/airtime trade-off on real fine-tunes of uniform ranks; suggest weights",
    "fed": "Federated fine-tuning over the air: edges train on their shards, adapters go up, the host aggregates",
    "sweep": "Compare rank policies across SNRs: accuracy, payload bytes, airtime, reward (table, CSV, plots)",
    "xo-cal": "Measure the host's and the edge's Pluto oscillator offset over the air and trim the host's xo_correction",
}


MAX_USAGE_ERROR_CHARS = 300


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line `airlora <verb>: <message>` with exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        if len(message) > MAX_USAGE_ERROR_CHARS:
            message = message[:MAX_USAGE_ERROR_CHARS] + "..."
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen verb's module is imported (all of them for --help)."""
    parser = OneLineParser(prog="airlora", description="AirLoRA Testbed")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name, help_text in VERBS.items():
        verb_parser = sub.add_parser(name, help=help_text, description=help_text)
        if verb is None or verb == name:
            _module(name).add_arguments(verb_parser)
    return parser


def _module(verb: str):
    return importlib.import_module(f"airlora.commands.{verb.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `airlora` console script."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in VERBS else None).parse_args(argv)
    module = _module(args.verb)
    progress.enable_for_command(bool(getattr(args, "json", False)))  # bars on a terminal, never under --json
    try:
        return int(module.run(args) or 0)
    except AirLoraError as exc:
        print(f"airlora {args.verb}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"airlora {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:
        progress.enable(False)


if __name__ == "__main__":
    sys.exit(main())
