"""`airlora bench radio`: transmitter and receiver throughput per MCS on one core, against scikit-commpy."""

from __future__ import annotations

import argparse

from airlora.commands.common import emit_json

TARGETS = ("radio",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=TARGETS, help="what to benchmark")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per MCS (after warm-up)")
    parser.add_argument("--commpy-bits", type=int, default=1500,
                        help="info bits through the commpy reference (it decodes about 700 bit/s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of payloads and noise")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
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
