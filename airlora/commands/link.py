"""`airlora link`: send random bytes over the configured radio backend and report, measured."""

from __future__ import annotations

import argparse
import math

import numpy as np

from radio.backends.factory import make_backend
from radio.link import LinkSettings, transfer
from radio.transmitter import TX_POWER
from airlora.commands.common import add_config_arguments, emit_json, finite_float, load_config
from testbed.progress import echo, progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--snr-db", type=finite_float, default=None, help="channel SNR (Es/N0) in dB")
    parser.add_argument("--bytes", type=int, default=200000, help="random bytes to deliver")
    parser.add_argument("--seed", type=int, default=None, help="seed of the data and the channel")
    parser.add_argument("--channel", choices=["awgn", "rayleigh", "rician"], default=None, help="channel model")
    parser.add_argument("--cfo-hz", type=finite_float, default=None, help="carrier frequency offset")
    parser.add_argument("--sco-ppm", type=finite_float, default=None,
                        help="sample clock offset in ppm (> 0: the transmitter's clock is fast)")
    parser.add_argument("--mcs", default=None, help="'auto' or an MCS name such as qpsk-1/2")
    parser.add_argument("--sample-rate-hz", type=finite_float, default=None, help="baseband sample rate")
    parser.add_argument("--backend", choices=["sim", "zmq", "pluto"], default=None,
                        help="sim (in-process, the default), zmq (a loopback IQ cable) or pluto (emulated without "
                             "--pluto-uri); --set radio.backend=... works too")
    parser.add_argument("--pluto-uri", default=None, help="a real Pluto with TX cabled to RX, e.g. ip:192.168.2.1")
    parser.add_argument("--frame", choices=["v1", "v2"], default=None,
                        help="v1: K=7 packets; v2: LDPC bursts, windowed ARQ (radio.frame)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """--snr-db and friends become --set overrides, so they are validated like the file."""
    backend = args.backend
    if backend is None and not any(o.startswith("radio.backend=") for o in getattr(args, "overrides", [])):
        backend = "sim"  # the link demo runs in-process unless asked otherwise
    pairs = [("radio.backend", backend), ("channel.snr_db", args.snr_db), ("channel.model", args.channel), ("channel.cfo_hz", args.cfo_hz),
             ("channel.sco_ppm", args.sco_ppm),
             ("radio.mcs", args.mcs), ("radio.sample_rate_hz", args.sample_rate_hz), ("channel.seed", args.seed),
             ("radio.frame", getattr(args, "frame", None))]
    return [f"{key}={value}" for key, value in pairs if value is not None]


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args, overrides_from_args(args))
    settings = LinkSettings.from_config(cfg.radio)
    if settings.frame == "v2":
        return _run_v2(args, cfg, settings)
    seed = cfg.channel.seed
    data = np.random.default_rng(seed).bytes(args.bytes)
    packets = -(-len(data) // settings.packet_payload_bytes)
    with _loopback(cfg, args.pluto_uri) as backend, progress(packets, "delivering", unit="packet") as bar:

        def on_round(report) -> None:
            r = report.rounds[-1]
            bar.set_postfix(mcs=r.mcs, snr_db=f"{r.snr_db_measured:.1f}")
            if not args.json:
                _round_line(report)

        report = transfer(data, backend, settings, session=seed & 0xFFFF, on_round=on_round,
                          on_progress=lambda delivered, total: bar.update(delivered - bar.n))
    airtime_s = report.samples_sent / settings.sample_rate_hz
    goodput = 8 * len(data) / airtime_s if report.delivered else 0.0
    snr = report.snr_db_measured
    shannon = settings.occupied_bandwidth_hz * math.log2(1 + 10 ** (snr / 10)) if math.isfinite(snr) else float("nan")
    result = {
        "delivered": report.delivered,
        "bytes": len(data),
        "backend": cfg.radio.backend,
        "channel": cfg.channel.model,
        "snr_db_set": cfg.channel.snr_db,
        "cfo_hz_set": cfg.channel.cfo_hz,
        "sco_ppm_set": cfg.channel.sco_ppm,
        "snr_db_measured": snr,
        "snr_db_packets": [round(x, 3) for x in report.snr_db_packets],
        "mcs": report.rounds[-1].mcs if report.rounds else None,
        "mcs_per_round": [r.mcs for r in report.rounds],
        "rounds": len(report.rounds),
        "packets_total": report.packets_total,
        "packets_sent": report.packets_sent,
        "packets_ok": report.packets_ok,
        "packets_retransmitted": report.packets_retransmitted,
        "samples_sent": report.samples_sent,
        "airtime_s": airtime_s,
        "goodput_bps": goodput,
        "occupied_bandwidth_hz": settings.occupied_bandwidth_hz,
        "shannon_bps": shannon,
        "efficiency": goodput / shannon if shannon and math.isfinite(shannon) else float("nan"),
        "rx_wall_s": report.rx_wall_s,
        "rx_samples_per_s": report.samples_sent / report.rx_wall_s if report.rx_wall_s else float("nan"),
    }
    if args.json:
        emit_json(result)
    else:
        _print_summary(result)
    return 0 if report.delivered else 1


def _loopback(cfg, pluto_uri: str | None):
    """The backend `airlora link` sends through: one object with tx() and rx()."""
    if cfg.radio.backend != "zmq":
        return make_backend(cfg.radio, cfg.channel, TX_POWER, pluto_uri=pluto_uri)
    return _ZmqLoop(cfg)


class _ZmqLoop:
    """Both ends of a ZeroMQ IQ cable in this process (tx() on one, rx() on the other)."""

    def __init__(self, cfg) -> None:
        from radio.backends.factory import make_channel
        from radio.backends.zmq_iq import loopback_pair

        channel = make_channel(cfg.channel, cfg.radio.sample_rate_hz, cfg.radio.samples_per_symbol, TX_POWER)
        self._tx, self._rx = loopback_pair(cfg.radio.sample_rate_hz, channel)
        self.sample_rate_hz = cfg.radio.sample_rate_hz

    @property
    def tx_backend(self):
        """The cable's transmitting end."""
        return self._tx

    @property
    def rx_backend(self):
        """The cable's receiving end (with the channel)."""
        return self._rx

    def tx(self, iq) -> None:
        self._tx.tx(iq)

    def rx(self, n: int):
        return self._rx.rx(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._tx.close()
        self._rx.close()


def _round_line(report) -> None:
    r = report.rounds[-1]
    echo(f"round {len(report.rounds):2d}: {r.packets_sent:5d} packets at {r.mcs:10s} "
          f"ok {r.packets_ok:5d}  SNR measured {r.snr_db_measured:6.2f} dB  "
          f"({report.packets_ok}/{report.packets_total} delivered)")


def _print_summary(res: dict) -> None:
    print(f"delivered: {res['delivered']} ({res['bytes']} bytes, SHA-256 {'matches' if res['delivered'] else 'MISMATCH'})")
    print(f"SNR set {res['snr_db_set']:.2f} dB, measured {res['snr_db_measured']:.2f} dB "
          f"({len(res['snr_db_packets'])} packets), channel {res['channel']}, backend {res['backend']}")
    print(f"MCS {res['mcs']} (per round: {', '.join(res['mcs_per_round'])})")
    print(f"packets: {res['packets_total']} in the payload, {res['packets_sent']} sent, "
          f"{res['packets_retransmitted']} retransmitted")
    print(f"airtime {res['airtime_s']:.3f} s, goodput {res['goodput_bps'] / 1e3:.1f} kbit/s, "
          f"Shannon {res['shannon_bps'] / 1e3:.1f} kbit/s over {res['occupied_bandwidth_hz'] / 1e3:.0f} kHz, "
          f"efficiency {res['efficiency']:.2f}")
    print(f"receiver wall time {res['rx_wall_s']:.2f} s ({res['rx_samples_per_s'] / 1e6:.2f} MS/s)")


# ----- frame v2 -----

def _run_v2(args: argparse.Namespace, cfg, settings: LinkSettings) -> int:
    """`airlora link --frame v2`: LDPC bursts through radio.link_v2.transfer_v2 (both ends in one loop)."""
    from radio.link_v2 import transfer_v2

    seed = cfg.channel.seed
    data = np.random.default_rng(seed).bytes(args.bytes)
    with _loopback(cfg, args.pluto_uri) as backend, progress(len(data), "delivering", unit="B") as bar:
        tx, rx = (backend.tx_backend, backend.rx_backend) if isinstance(backend, _ZmqLoop) else (backend, backend)

        def on_burst(record) -> None:
            bar.set_postfix(mcs=record.mcs, snr_db=f"{record.snr_db:.1f}")
            if not args.json:
                echo(f"burst {record.burst:4d}: {record.codewords:5d} codewords at {record.mcs:16s} "
                     f"ok {record.codewords_ok:5d}  resent {record.resent_codewords:5d}  "
                     f"SNR {record.snr_db:6.2f} dB")

        report = transfer_v2(data, tx, settings, session=seed & 0xFFFF, rx_backend=rx, on_burst=on_burst,
                             on_progress=lambda got, total: bar.update(got - bar.n))
    result = v2_result(report, cfg)
    if args.json:
        emit_json(result)
    else:
        _print_v2(result)
    return 0 if report.delivered else 1


def v2_result(report, cfg) -> dict:
    """The JSON figures of a v2 transfer (radio.link_v2.LinkV2Report) against the configured channel."""
    snr_set = cfg.channel.snr_db
    shannon = report.shannon_bps(snr_set)
    return {
        "frame": "v2",
        "delivered": report.delivered,
        "sha256_ok": report.received_sha256_hex == report.sha256_hex,
        "bytes": report.payload_bytes,
        "backend": cfg.radio.backend,
        "channel": cfg.channel.model,
        "snr_db_set": snr_set,
        "cfo_hz_set": cfg.channel.cfo_hz,
        "sco_ppm_set": cfg.channel.sco_ppm,
        "snr_db_measured": report.snr_db_measured,
        "snr_db_per_burst": [round(x, 3) for x in report.snr_db_per_burst],
        "mcs_per_burst": report.mcs_per_burst,
        "bursts": len(report.bursts),
        "repair_bursts": report.repair_bursts,
        "timeouts": report.timeouts,
        "codewords_sent": report.codewords_sent,
        "codewords_ok": report.codewords_ok,
        "codewords_resent": report.codewords_resent,
        "samples_sent": report.samples_sent,
        "airtime_s": report.airtime_s,
        "wall_s": report.wall_s,
        "rx_wall_s": report.rx_wall_s,
        "tx_wall_s": report.tx_wall_s,
        "goodput_bps": report.goodput_bps,
        "occupied_bandwidth_hz": report.occupied_bandwidth_hz,
        "shannon_bps": shannon,
        "efficiency": report.goodput_bps / shannon,
        "rx_samples_per_s": report.stream_samples / report.rx_wall_s if report.rx_wall_s else float("nan"),
    }


def _print_v2(res: dict) -> None:
    sha = "matches" if res["sha256_ok"] else "MISMATCH"
    print(f"delivered: {res['delivered']} ({res['bytes']} bytes, SHA-256 {sha})")
    print(f"SNR set {res['snr_db_set']:.2f} dB, measured {res['snr_db_measured']:.2f} dB, channel {res['channel']}, "
          f"backend {res['backend']}")
    print(f"bursts {res['bursts']} ({res['repair_bursts']} with repairs, {res['timeouts']} timed out); MCS per burst: "
          f"{', '.join(res['mcs_per_burst'])}")
    print(f"codewords: {res['codewords_sent']} sent, {res['codewords_ok']} ok, {res['codewords_resent']} resent")
    print(f"airtime {res['airtime_s']:.3f} s, wall {res['wall_s']:.2f} s (receiver {res['rx_wall_s']:.2f} s, "
          f"{res['rx_samples_per_s'] / 1e6:.2f} MS/s), goodput {res['goodput_bps'] / 1e3:.1f} kbit/s")
    print(f"Shannon {res['shannon_bps'] / 1e3:.1f} kbit/s over {res['occupied_bandwidth_hz'] / 1e3:.0f} kHz at the set "
          f"SNR: goodput/Shannon {res['efficiency']:.3f}")
