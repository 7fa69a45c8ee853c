"""`airlora bench radio`: TX/RX throughput per K=7 MCS against scikit-commpy, then per LDPC MCS the v2 burst
receiver's MS/s, the LDPC decoder's Mbit/s near its waterfall and its speed-up over commpy's LDPC decoder;
`airlora bench finetune`: accuracy per LoRA rank and scaling mode over seeds (real fine-tunes), with AdaLoRA beside it; `airlora bench cluster`: the
speed-up of sweeps with 1 vs 2 workers, local processes and a local Ray (policy/cluster_bench.py); `airlora bench
fleet`: the airtime of one fountain-coded broadcast to N local edges against unicast delivery (host/fleet_bench.py)."""

from __future__ import annotations

import argparse

from airlora.commands.common import (add_config_arguments, comma_floats, emit_json, load_config, positive_float,
                                     write_report)

TARGETS = ("radio", "finetune", "cluster", "fleet", "link")
MAX_BENCH_EDGES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=TARGETS, help="what to benchmark")
    parser.add_argument("--seconds", type=positive_float, default=1.0, help="measuring time per MCS (after warm-up)")
    parser.add_argument("--commpy-bits", type=int, default=1500,
                        help="info bits through the commpy reference (it decodes about 700 bit/s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of payloads and noise")
    parser.add_argument("--radio-family", choices=("conv", "ldpc", "both"), default="both",
                        help="radio: the K=7 MCSs (v1 receiver), the LDPC MCSs (v2 burst receiver) or both")
    parser.add_argument("--commpy-codewords", type=int, default=4,
                        help="radio ldpc: codewords per MCS through commpy's LDPC decoder (~0.1 Mbit/s; 0 skips)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    finetune = parser.add_argument_group("finetune (real fine-tunes of the configured model and data)")
    finetune.add_argument("--ranks", default="1,2,4,8,16", help="uniform ranks to measure")
    finetune.add_argument("--modes", default="fixed:2@2e-3,rslora:5.657",
                          help="scaling modes alpha_mode:alpha[@lr], comma-separated (lr: finetune.lr when absent)")
    finetune.add_argument("--seeds", type=int, default=3, help="fine-tune seeds per cell (init and batch order)")
    finetune.add_argument("--adalora", type=int, default=4, help="AdaLoRA target rank to compare (0: skip)")
    finetune.add_argument("--out", default=None, help="also write the JSON report to this file")
    add_config_arguments(finetune)
    cluster = parser.add_argument_group("cluster (sweeps as jobs; the config above sets the model and data)")
    cluster.add_argument("--workers", default="1,2", help="worker counts to compare (comma-separated)")
    cluster.add_argument("--backends", default="local,ray", help="local (processes) and/or ray (a local Ray)")
    cluster.add_argument("--sweep-seeds", type=int, default=20,
                         help="seeds of the surrogate sweep (cells: 6 policies x 5 SNRs x seeds)")
    cluster.add_argument("--finetunes", type=int, default=4,
                         help="real fine-tunes timed, from the plan of a real sweep of the baselines (0: skip)")
    link = parser.add_argument_group("link (v2 link: goodput/Shannon per SNR, RSS/airtime/wall per size)")
    link.add_argument("--link-sizes", default="0.1,1,10", help="payload sizes in MB, comma-separated (or empty)")
    fleet = parser.add_argument_group("fleet (local edge processes; the config above sets model, radio and fleet)")
    fleet.add_argument("--edges", type=int, default=8, help=f"local edges (2..{MAX_BENCH_EDGES})")
    fleet.add_argument("--snr-db", type=comma_floats, default=None,
                       help="each edge's SNR, comma-separated (default: spread evenly over 0..20 dB)")
    fleet.add_argument("--erasures", type=comma_floats, default=[0.0, 0.1],
                       help="scenarios: share of each edge's good packets erased at random (0..0.9)")
    fleet.add_argument("--payload", default=None,
                       help="a signed payload file (`airlora finetune --out`); default: fine-tune one now")
    fleet.add_argument("--steps", type=int, default=20, help="fine-tuning steps of the payload made when none given")


def run(args: argparse.Namespace) -> int:
    if args.target == "finetune":
        return _finetune(args)
    if args.target == "cluster":
        return _cluster(args)
    if args.target == "fleet":
        return _fleet(args)
    if args.target == "link":  # SNR tables: radio/bench_link.py; sizes, host and edge apart: host/link_bench.py
        from host.link_bench import main as link_sizes_main
        from radio.bench_link import main as bench_link_main

        json_flag = ["--json"] if args.json else []
        rc = bench_link_main(json_flag)
        return rc or (link_sizes_main(["--sizes", args.link_sizes] + json_flag) if args.link_sizes.strip() else 0)
    from radio.bench import bench_radio
    from radio.errors import RadioError

    if args.seconds <= 0 or args.commpy_bits < 16:
        raise RadioError("--seconds must be > 0 and --commpy-bits >= 16")
    if args.commpy_codewords < 0:
        raise RadioError("--commpy-codewords must be >= 0")
    report = bench_radio(args.seconds, args.commpy_bits, args.seed) if args.radio_family != "ldpc" else {}
    if report and not args.json:
        _print_conv(report)
    if args.radio_family != "conv":
        from radio.bench import bench_burst_rx

        say = (lambda _line: None) if args.json else print
        report["ldpc"] = bench_burst_rx(args.seconds, args.seed, args.commpy_codewords, say=say)
    if args.json:
        emit_json(report)
    return 0


def _print_conv(report: dict) -> None:
    from radio.bench import REFERENCE_MCS

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
    print()


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


def _cluster(args: argparse.Namespace) -> int:
    from airlora.commands.common import start_model_verb
    from policy.cluster_bench import bench_cluster
    from testbed.errors import ConfigError

    start_model_verb(args)
    cfg = load_config(args)
    try:
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        workers = []
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not workers or not all(1 <= w <= 64 for w in workers):
        raise ConfigError(f"--workers {args.workers!r}: expected worker counts in 1..64, e.g. 1,2")
    if not backends or set(backends) - {"local", "ray"}:
        raise ConfigError(f"--backends {args.backends!r}: expected local and/or ray")
    if not 1 <= args.sweep_seeds <= 1000 or not 0 <= args.finetunes <= 1000:
        raise ConfigError("--sweep-seeds must be in 1..1000 and --finetunes in 0..1000")
    say = (lambda _line: None) if args.json else print
    report = bench_cluster(cfg, backends, workers, args.sweep_seeds, args.finetunes, [-5.0, 0.0, 5.0, 10.0, 15.0],
                           say=say)
    if write_report(report, args.out, args.json):
        return 0
    print(f"{report['cores']} cores (load average before: {report['load_average_before'][0]:.2f}); w workers get "
          "cores // w torch threads each; start-up excluded (shown apart)")
    print(f"{'sweep':<10} {'backend':<8} {'workers':>7} {'threads':>7} {'start s':>8} {'wall s':>8} {'speed-up':>9} "
          f"{'same numbers':>13}")
    for part, what in (("surrogate", f"{report['surrogate']['cells']} cells"),
                       ("real", f"{report['real'].get('finetunes', 0)} fine-tunes")):
        for r in report[part].get("runs", []):
            print(f"{part:<10} {r['backend']:<8} {r['workers']:>7} {r['threads']:>7} {r['startup_s']:>8.2f} "
                  f"{r['wall_s']:>8.2f} {r['speedup']:>8.2f}x {'yes' if r['same_numbers'] else 'NO':>13}")
        if report[part].get("runs"):
            print(f"  ({part}: {what})")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from pathlib import Path

    from airlora.commands.common import start_model_verb
    from host.fleet_bench import bench_fleet
    from testbed.errors import ConfigError

    start_model_verb(args)
    cfg = load_config(args)
    if not 2 <= args.edges <= MAX_BENCH_EDGES:
        raise ConfigError(f"--edges {args.edges}: the benchmark runs 2..{MAX_BENCH_EDGES} local edges")
    snrs = args.snr_db or [20.0 * i / (args.edges - 1) for i in range(args.edges)]
    if len(snrs) != args.edges or not all(-30 <= s <= 60 for s in snrs):
        raise ConfigError(f"--snr-db: expected {args.edges} SNRs in -30..60 dB, got {snrs}")
    if not args.erasures or not all(0 <= e <= 0.9 for e in args.erasures) or not 1 <= args.steps <= 10000:
        raise ConfigError("--erasures must be shares in 0..0.9 and --steps in 1..10000")
    say = (lambda _line: None) if args.json else print
    if args.payload:
        path = Path(args.payload)
        if not path.is_file() or path.stat().st_size > cfg.edge.max_payload_bytes:
            raise ConfigError(f"--payload {args.payload}: not a file of at most edge.max_payload_bytes")
        payload = path.read_bytes()
    else:
        from host.pipeline import finetune_and_pack
        from testbed.keys import host_signing_secret

        say(f"fine-tuning the payload ({cfg.finetune.ranks}, {args.steps} steps) ...")
        payload, _ = finetune_and_pack(cfg, steps=args.steps, signing_key=host_signing_secret(cfg)[0])
    report = bench_fleet(cfg, payload, snrs, args.erasures, say)
    if write_report(report, None, args.json):
        return 0
    print(f"{args.edges} edges at {', '.join(f'{s:.1f}' for s in snrs)} dB, payload {len(payload)} bytes, "
          f"MCS rule {report['mcs_rule']}; airtime in seconds (soundings excluded)")
    print(f"{'erased':>7} {'broadcast':>10} {'worst unicast':>14} {'ratio':>6} {'goal':>5} {'sum unicast':>12} "
          f"{'ratio':>6} {'symbols/K':>10} {'installed':>10}")
    for sc in report["scenarios"]:
        goal = f"{sc['goal_vs_worst']:.2f}" if sc["goal_vs_worst"] else "-"
        print(f"{sc['erase_fraction']:>7.0%} {sc['fleet_airtime_s']:>10.2f} {sc['worst_unicast_airtime_s']:>14.2f} "
              f"{sc['vs_worst_unicast']:>6.2f} {goal:>5} {sc['sequential_unicast_airtime_s']:>12.2f} "
              f"{sc['vs_sequential_unicast']:>6.2f} {sc['fleet_overhead']:>10.3f} "
              f"{'all' if sc['all_installed'] else 'NOT ALL':>10}")
    print(f"results: {report['run_dir']}")
    return 0 if all(sc["all_installed"] for sc in report["scenarios"]) else 1
