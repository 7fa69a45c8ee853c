"""`airlora bench radio`: TX/RX throughput per MCS against scikit-commpy; `airlora bench finetune`: accuracy per
LoRA rank and scaling mode over seeds (real fine-tunes), with AdaLoRA beside it."""

from __future__ import annotations

import argparse

from airlora.commands.common import add_config_arguments, emit_json, load_config, positive_float, write_report

TARGETS = ("radio", "finetune")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=TARGETS, help="what to benchmark")
    parser.add_argument("--seconds", type=positive_float, default=1.0, help="measuring time per MCS (after warm-up)")
    parser.add_argument("--commpy-bits", type=int, default=1500,
                        help="info bits through the commpy reference (it decodes about 700 bit/s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of payloads and noise")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    finetune = parser.add_argument_group("finetune (real fine-tunes of the configured model and data)")
    finetune.add_argument("--ranks", default="1,2,4,8,16", help="uniform ranks to measure")
    finetune.add_argument("--modes", default="fixed:2@2e-3,rslora:5.657",
                          help="scaling modes alpha_mode:alpha[@lr], comma-separated (lr: finetune.lr when absent)")
    finetune.add_argument("--seeds", type=int, default=3, help="fine-tune seeds per cell (init and batch order)")
    finetune.add_argument("--adalora", type=int, default=4, help="AdaLoRA target rank to compare (0: skip)")
    finetune.add_argument("--out", default=None, help="also write the JSON report to this file")
    add_config_arguments(finetune)


def run(args: argparse.Namespace) -> int:
    if args.target == "finetune":
        return _finetune(args)
    from radio.bench import REFERENCE_MCS, bench_radio
    from radio.errors import RadioError

    if args.seconds <= 0 or args.commpy_bits < 16:
        raise RadioError("--seconds must be > 0 and --commpy-bits >= 16")
    report = bench_radio(args.seconds, args.commpy_bits, args.seed)
    if args.json:
        emit_json(report)
        return 0
    print(f"radio throughput on one core ({report['threads']}); fs {report['sample_rate_hz']:g} Hz, "
          f"sps {report['samples_per_symbol']}, {report['payload_bytes']}-byte payloads, "
          f"AWGN {report['snr_db']:g} dB, feed chunks of {report['feed_chunk_samples']}")
    print("MS/s are per second of this process's CPU time on its one core; (wall) counts wall-clock time")
    print(f"{'MCS':<10} {'TX MS/s':>8} {'RX MS/s':>8} {'(wall)':>7} {'RX info Mbit/s':>15} {'packets ok':>11}")
    for m in report["mcs"]:
        print(f"{m['name']:<10} {m['tx_samples_per_s'] / 1e6:8.2f} {m['rx_samples_per_s'] / 1e6:8.2f} "
              f"{m['rx_samples_per_wall_s'] / 1e6:7.2f} "
              f"{m['rx_info_bits_per_s'] / 1e6:15.3f} {m['packets_ok']:>5d}/{m['packets']:<5d}")
    ref = report["commpy_reference"]
    print(f"commpy reference ({REFERENCE_MCS}: {ref['work']}): {ref['info_bits_per_s']:.0f} info bit/s "
          f"on {ref['info_bits']} bits ({ref['bit_errors']} errors)")
    print(f"speedup vs commpy ({REFERENCE_MCS}, ours = full receiver incl. sync): "
          f"{report['speedup_vs_commpy']:.0f}x")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from adapters.ranks import ALPHA_MODES, MAX_RANK
    from ml.rank_scaling import ScalingMode, format_table, run_benchmark
    from testbed.errors import ConfigError

    cfg = load_config(args)
    try:
        ranks = sorted(int(r) for r in args.ranks.split(","))
        modes = [ScalingMode.parse(s, cfg.finetune.lr) for s in args.modes.split(",") if s]
    except ValueError:
        raise ConfigError(f"--ranks {args.ranks!r} / --modes {args.modes!r}: expected e.g. --ranks 1,2,4 "
                          "--modes fixed:2,rslora:5.66@1e-3") from None
    if not ranks or min(ranks) < 1 or max(ranks) > MAX_RANK:
        raise ConfigError(f"--ranks {args.ranks!r}: ranks must be integers in 1..{MAX_RANK}")
    if not 1 <= args.seeds <= 100 or not 0 <= args.adalora <= MAX_RANK:
        raise ConfigError(f"--seeds must be in 1..100 and --adalora in 0..{MAX_RANK}")
    bad = [m.label for m in modes if not (0 < m.alpha <= 1e4 and 0 < m.lr < 1)]  # NaN fails both
    if bad:
        raise ConfigError(f"--modes: {bad[0]}: alpha must be in (0, 1e4] and lr in (0, 1)")
    unknown = [m.alpha_mode for m in modes if m.alpha_mode not in ALPHA_MODES]
    if unknown:
        raise ConfigError(f"--modes: unknown alpha mode {unknown[0]!r}; known: {', '.join(ALPHA_MODES)}")
    say = (lambda _line: None) if args.json else print
    report = run_benchmark(cfg, ranks, modes, args.seeds, args.adalora or None, say=say)
    report["config"] = {"model": cfg.model.name, "task": cfg.data.task, "steps": cfg.finetune.steps,
                        "train_size": cfg.data.train_size, "test_size": cfg.data.test_size,
                        "batch_size": cfg.finetune.batch_size}
    if write_report(report, args.out, args.json):
        return 0
    print(f"{cfg.model.name} on {cfg.data.task}, {cfg.finetune.steps} steps, {args.seeds} seeds; test accuracy "
          "mean ±95% CI (std)")
    for line in format_table(report):
        print(line)
    return 0
