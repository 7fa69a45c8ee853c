"""`airlora xo-cal`: measure the offset between the host's and the edge's Pluto over the air and trim the host's.

Runs on the host with the edge up (run.edge remote), or starts a local edge process as `airlora run` does.
Prints one line per sounding and a final line with `radio.pluto.xo_correction_hz`, which --out writes into a
YAML file (the host's testbed.yaml). docs/lab_setup.md says when to run it.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airlora.commands.common import add_config_arguments, load_config, positive_float, quiet_third_party

if TYPE_CHECKING:
    from host.xo_calibration import Sounding
    from testbed.config import TestbedConfig

EXIT_NOT_CONVERGED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--pluto-uri", default=None,
                        help="the host's Pluto (default radio.pluto.uri; none: emulated)")
    parser.add_argument("--out", default=None, metavar="YAML",
                        help="write radio.pluto.xo_correction_hz into this YAML file (made if missing; rewritten "
                             "with its other keys, without its comments)")
    parser.add_argument("--bursts", type=int, default=20, help="probe bursts per sounding (default 20)")
    parser.add_argument("--tolerance-ppm", type=positive_float, default=0.5,
                        help="done when the measured error is within this (default 0.5 ppm)")
    parser.add_argument("--max-corrections", type=int, default=3,
                        help="xo_correction writes before giving up, each followed by a sounding (default 3)")
    parser.add_argument("--check", action="store_true",
                        help="only measure: one sounding at the configured xo_correction, nothing written; "
                             "exit 1 when it is not within the tolerance")


def run(args: argparse.Namespace) -> int:
    from host.xo_calibration import CalibrationError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s host %(levelname)s %(message)s")
    quiet_third_party()
    if args.bursts < 1 or args.max_corrections < 0:
        raise CalibrationError(f"--bursts must be >= 1 and --max-corrections >= 0, got {args.bursts} and "
                               f"{args.max_corrections}")
    cfg = load_config(args)
    if cfg.radio.backend != "pluto":
        raise CalibrationError(f"radio.backend is {cfg.radio.backend!r}: xo_correction is a Pluto's (use pluto)")
    if cfg.radio.pluto.one_device:
        raise CalibrationError("radio.pluto.one_device: TX and RX share one crystal, there is no offset to calibrate")
    return _calibrate(args, cfg)


def _line(iteration: int, s: Sounding, new_xo: float | None, lo_hz: float, tolerance_ppm: float) -> str:
    """One sounding as a line."""
    extra = [f"{s.detected} of {s.bursts} bursts"]
    if s.sco_ppm is not None:
        extra.append(f"SCO {s.sco_ppm:+.2f} ppm")
    if s.snr_db is not None:
        extra.append(f"SNR {s.snr_db:.1f} dB")
    head = (f"iteration {iteration}: CFO {s.cfo_hz:+.1f} Hz = {s.error_ppm:+.3f} ppm of {lo_hz / 1e6:g} MHz "
            f"({', '.join(extra)}) at xo_correction {s.xo_correction_hz:.0f} Hz")
    if new_xo is not None:
        return f"{head} -> {new_xo:.0f} Hz"
    within = abs(s.error_ppm) < tolerance_ppm
    return f"{head}: {'within' if within else 'NOT within'} {tolerance_ppm:g} ppm"


def _calibrate(args: argparse.Namespace, cfg: TestbedConfig) -> int:
    from host.edge_process import EdgeProcess
    from host.sender import Sender
    from host.xo_calibration import CalibrationError, calibrate, local_edge_config, sound, sounding_settings
    from radio.backends.factory import make_backend
    from radio.backends.pluto import PlutoBackend
    from radio.link import LinkSettings
    from radio.transmitter import TX_POWER
    from testbed import __version__
    from testbed.control.client import ControlClient
    from testbed.control.endpoint import PeerTimeout
    from testbed.keys import cable_curve
    from testbed.messages import Hello

    lo_hz = cfg.radio.pluto.lo_hz
    edge = None
    if cfg.run.edge == "local":
        folder = Path(cfg.run.out_dir).expanduser() / f"xo-cal-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        folder.mkdir(parents=True, exist_ok=True)
        dump = cfg.model_dump(mode="json")
        host_config = folder / "config.yaml"
        import yaml

        host_config.write_text(yaml.safe_dump(dump, sort_keys=False))
        edge = EdgeProcess(local_edge_config(dump, host_config), folder / "edge.log")
    hello = Hello(role="host", node_id="host-xo-cal", software_version=__version__, capabilities=["send"])
    client = ControlClient.from_config(cfg.control, hello)
    tx = None
    try:
        try:
            timeout = cfg.run.edge_start_timeout_s
            if edge is not None:
                edge.wait_ready(client, timeout)
            else:
                client.wait_ready(timeout)
        except PeerTimeout as exc:
            raise CalibrationError(f"the edge at {cfg.control.endpoint} is not available: {exc}") from None
        tx = make_backend(cfg.radio, cfg.channel, TX_POWER, pluto_uri=args.pluto_uri, role="tx",
                          curve=cable_curve(cfg.control.curve, "tx"))
        if not isinstance(tx, PlutoBackend):
            raise CalibrationError(f"the host's radio is a {type(tx).__name__}, not a Pluto of its own")
        settings = sounding_settings(LinkSettings.from_config(cfg.radio))
        sender = Sender(client, tx, settings, cfg.radio.backend, edge_check=edge.check if edge else None)
        base = secrets.randbits(24) << 8
        timeouts = {"deadline_s": cfg.run.delivery_timeout_s, "report_timeout_s": cfg.run.burst_report_timeout_s}
        if args.check:
            s = sound(sender, lo_hz, tx.xo_correction_hz, base, args.bursts, **timeouts)
            print(_line(1, s, None, lo_hz, args.tolerance_ppm), flush=True)
            within = abs(s.error_ppm) < args.tolerance_ppm
            print(f"residual {s.error_ppm:+.3f} ppm at xo_correction {s.xo_correction_hz:.0f} Hz: "
                  f"{'within' if within else 'NOT within'} {args.tolerance_ppm:g} ppm", flush=True)
            return 0 if within else EXIT_NOT_CONVERGED
        start_xo = tx.xo_correction_hz
        try:
            result = calibrate(
                sender, tx, lo_hz, base, bursts=args.bursts, tolerance_ppm=args.tolerance_ppm,
                max_corrections=args.max_corrections,
                on_sounding=lambda i, s, new: print(_line(i, s, new, lo_hz, args.tolerance_ppm), flush=True),
                **timeouts)
        except BaseException:  # a failed or interrupted calibration leaves the device as it found it
            tx.xo_correction_hz = start_xo
            raise
        value = round(result.xo_correction_hz)
        if not result.converged:
            tx.xo_correction_hz = result.xo_start_hz
            print(f"not calibrated: residual {result.residual_ppm:+.3f} ppm after {result.corrections} corrections; "
                  f"xo_correction put back to {result.xo_start_hz:.0f} Hz, nothing written", flush=True)
            return EXIT_NOT_CONVERGED
        where = _write(args.out, value) if args.out else "put it under radio.pluto in the host's testbed.yaml"
        n = result.corrections
        print(f"radio.pluto.xo_correction_hz: {value}  (residual {result.residual_ppm:+.3f} ppm after "
              f"{n} correction{'' if n == 1 else 's'}; {where})", flush=True)
        return 0
    finally:
        if tx is not None:
            tx.close()
        client.close()
        if edge is not None:
            edge.stop()


def _write(out: str, value: int) -> str:
    """Set radio.pluto.xo_correction_hz in the YAML file `out` (made when missing); what was done, as words."""
    import yaml

    from host.xo_calibration import CalibrationError

    path = Path(out).expanduser()
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise CalibrationError(f"{path}: cannot read it as YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise CalibrationError(f"{path}: not a YAML mapping")
    radio = raw.setdefault("radio", {}) or {}
    raw["radio"] = radio
    pluto = radio.setdefault("pluto", {}) or {}
    radio["pluto"] = pluto
    pluto["xo_correction_hz"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return f"written to {path}"
