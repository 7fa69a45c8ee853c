"""`airlora ber`: uncoded BER of the full waveform receiver (RRC, sync, CFO, pilots) against theory."""

from __future__ import annotations

import argparse

from airlora.commands.common import emit_json, finite_float, positive_float

MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam", "256qam")  # radio.modulation.MODULATIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mod", default="qpsk", choices=MODULATIONS, help="modulation (Gray-mapped)")
    parser.add_argument("--ebn0-db", default="0:10:1",
                        help="Eb/N0 points in dB: start:stop:step (stop included) or a comma list")
    parser.add_argument("--bits", type=int, default=200_000, help="bits compared per point (at least)")
    parser.add_argument("--cfo-frac", type=finite_float, default=0.01, help="carrier frequency offset as a fraction of fs")
    parser.add_argument("--sample-rate-hz", type=positive_float, default=1.0e6, help="baseband sample rate")
    parser.add_argument("--sps", type=int, default=4, help="samples per symbol")
    parser.add_argument("--rolloff", type=positive_float, default=0.25, help="RRC roll-off")
    parser.add_argument("--payload-bytes", type=int, default=1024, help="payload bytes per packet")
    parser.add_argument("--seed", type=int, default=1, help="seed of payloads, channel and start offset")
    parser.add_argument("--plot", default=None, metavar="PNG", help="write a BER plot to this file")
    parser.add_argument("--json", action="store_true", help="print a JSON list of points")


def run(args: argparse.Namespace) -> int:
    from radio.ber import ber_curve, carrier_mcs, parse_range, plot_curve
    from radio.errors import RadioError

    points_db = parse_range(args.ebn0_db)
    if args.bits < 1:
        raise RadioError(f"--bits must be >= 1, got {args.bits}")
    if not 0.0 <= abs(args.cfo_frac) < 1.0 / (16 * args.sps):
        raise RadioError(f"--cfo-frac must be within +-{1.0 / (16 * args.sps):.4f} (the STF's CFO range)")
    points = ber_curve(args.mod, points_db, args.bits, cfo_frac=args.cfo_frac, seed=args.seed,
                       sample_rate_hz=args.sample_rate_hz, samples_per_symbol=args.sps,
                       rolloff=args.rolloff, payload_bytes=args.payload_bytes)
    if args.plot:
        plot_curve(points, args.mod, args.cfo_frac, args.plot)
    if args.json:
        emit_json([{"ebn0_db": p.ebn0_db, "ber": p.ber, "ber_theory": p.ber_theory, "bits": p.bits,
                    "errors": p.errors, "packets_sent": p.packets_sent, "packets_missed": p.packets_missed}
                   for p in points])
        return 0
    mcs = carrier_mcs(args.mod)
    carrier = mcs.name if mcs.modulation == args.mod else f"{mcs.name} with {args.mod} payload symbols"
    print(f"{args.mod} uncoded BER through the full receiver (packets of {carrier}, RRC sps={args.sps} "
          f"rolloff={args.rolloff}, CFO {100 * args.cfo_frac:g}% of fs, random start offset)")
    print(f"{'Eb/N0 dB':>8} {'BER':>10} {'theory':>10} {'bits':>9} {'errors':>7} {'missed pkts':>11}")
    for p in points:
        print(f"{p.ebn0_db:8.2f} {p.ber:10.3e} {p.ber_theory:10.3e} {p.bits:9d} {p.errors:7d} "
              f"{p.packets_missed:5d}/{p.packets_sent:<5d}")
    print("packets whose header failed or that were not detected are not counted (missed pkts)")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
