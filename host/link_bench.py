"""Frame v2 deliveries between two real processes, each side's memory its own (issue 16).

`run_pair` starts an `airlora edge` (host/edge_process.py) and a host process (`python -m host.link_bench
--host CONFIG BYTES`: random bytes through host/sender.py over the ZeroMQ cable, not applied) and returns the
host's figures with both peak RSS (VmHWM). `size_table` is the size table of `airlora bench link`: per payload
size, the zmq cable between two processes, and the sim backend, whose channel lives in one process with both
ends (its RSS is the pair's). tests/integration/test_v2_large.py runs the 28 MB case through `run_pair`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from host.edge_process import EdgeProcess, die_with_parent
from radio.bench_link import SIZE_SNR_DB, _floats, size_point_subprocess
from radio.rss import peak_rss_mb

SIZES_MB = (0.1, 1.0, 10.0)
MB = 1e6


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pair_config(workdir: Path, snr_db: float, snr_schedule: list[dict] | None = None, sample_rate_hz: float = 1e6,
                seed: int = 4) -> dict[str, Any]:
    """A testbed.yaml for one edge and one host on this machine: frame v2 over the zmq cable, fresh ports."""
    return {
        "model": {"cache_dir": str(workdir / "cache")},  # the embedded model: identity only, never loaded
        "radio": {"backend": "zmq", "frame": "v2", "sample_rate_hz": sample_rate_hz,
                  "zmq": {"endpoint": f"tcp://127.0.0.1:{free_port()}"}},
        "channel": {"snr_db": snr_db, "seed": seed, "snr_schedule": snr_schedule or []},
        "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": 0.5, "peer_timeout_s": 10.0},
        "edge": {"adapter_dir": str(workdir / "edge")},
    }


def run_pair(raw: dict[str, Any], payload_bytes: int, workdir: Path, timeout_s: float = 900.0,
             paced: bool = False, warm_bytes: int = 300_000) -> dict[str, Any]:
    """One delivery of payload_bytes random bytes from a host process to an edge process; the host's figures
    plus edge_peak_rss_mb. paced: the host plays its samples at the sample rate (host/paced_tx.py, as a real
    radio's DAC does). warm_bytes: a pair of processes of their own delivers that much first, so numba's kernels
    are compiled into its disk cache and the measured pair loads them (a process that compiles them holds ~100 MB
    more: a fresh clone's edge read 348-416 MB instead of ~295). Raises RuntimeError with both logs' ends when a
    host process fails."""
    if warm_bytes:
        run_pair(raw, warm_bytes, workdir / "warm", timeout_s, paced, warm_bytes=0)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "testbed.yaml"
    config.write_text(yaml.safe_dump(raw))
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
    edge = EdgeProcess(config, workdir / "edge.log")

    def host_process(nbytes: int, session: int) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "host.link_bench", "--host", str(config), str(nbytes),
                               "--timeout-s", str(timeout_s), "--session", str(session)] + ["--paced"] * paced,
                              cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s + 60,
                              preexec_fn=die_with_parent())
        if done.returncode != 0:
            raise RuntimeError(f"host process failed ({done.returncode}): {done.stderr[-2000:]}\nedge log: "
                               f"{edge.log_tail()}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    try:
        t0 = time.monotonic()
        out = host_process(payload_bytes, 7)
        process_wall_s = time.monotonic() - t0
        edge_rss = peak_rss_mb(edge.proc.pid) if edge.alive else float("nan")
    finally:
        edge.stop()
    out.update(edge_peak_rss_mb=edge_rss, process_wall_s=process_wall_s)
    return out


def host_side(config: Path, payload_bytes: int, timeout_s: float, paced: bool = False,
              session: int = 7) -> dict[str, Any]:
    """The host process of run_pair: deliver random bytes (not applied); its figures. paced: samples
    played at the sample rate, after a 256-byte sounding (session 6) that warms both ends; wall_s is then when
    the air went quiet or the delivery ended, whichever is later."""
    from host.paced_tx import PacedTx
    from host.sender import Sender
    from radio.backends.factory import make_backend
    from radio.link import LinkSettings
    from radio.transmitter import TX_POWER
    from testbed import __version__
    from testbed.config import load
    from testbed.control.client import ControlClient
    from testbed.messages import Hello

    cfg = load(config)
    client = ControlClient.from_config(cfg.control, Hello(role="host", node_id="bench", software_version=__version__))
    client.wait_ready(60)
    tx = make_backend(cfg.radio, cfg.channel, TX_POWER, role="tx")
    try:
        before = peak_rss_mb()
        payload = os.urandom(payload_bytes)
        air = PacedTx(tx) if paced else tx
        sender = Sender(client, air, LinkSettings.from_config(cfg.radio), "zmq")
        if paced:
            sender.deliver(os.urandom(256), session - 1, deadline_s=60.0, report_timeout_s=30.0, apply=False)
        t0 = time.monotonic()
        d = sender.deliver(payload, session, deadline_s=timeout_s, report_timeout_s=30.0, apply=False)
        wall_s = max(d.wall_s, air.air_end_s - t0) if paced else d.wall_s
    finally:
        tx.close()
        client.close()
    fs = cfg.radio.sample_rate_hz
    return {"bytes": payload_bytes, "delivered": d.delivered, "wall_s": wall_s, "paced": paced, "airtime_s": d.airtime_s(fs),
            "goodput_bps": 8 * payload_bytes / d.airtime_s(fs) if d.delivered else 0.0, "bursts": d.bursts,
            "mcs": d.mcs_per_burst, "timeouts": d.timeouts, "codewords_sent": d.codewords_sent,
            "codewords_ok": d.codewords_ok, "snr_db": [r.snr_db for r in d.burst_reports if r.detected],
            "host_rss_before_mb": before,
            "host_peak_rss_mb": peak_rss_mb()}


def size_point(size_mb: float, backend: str, sample_rate_hz: float, workdir: Path,
               snr_db: float = SIZE_SNR_DB, paced: bool = False) -> dict[str, Any]:
    """One row of the size table: zmq between two processes; sim in one subprocess holding both ends."""
    if backend == "zmq":
        r = run_pair(pair_config(workdir / f"{size_mb:g}MB", snr_db, sample_rate_hz=sample_rate_hz),
                     int(size_mb * MB), workdir / f"{size_mb:g}MB", timeout_s=max(900.0, 40.0 * size_mb), paced=paced)
        return dict(r, size_mb=size_mb, backend=backend)
    r = size_point_subprocess(size_mb, backend, sample_rate_hz)
    if "error" not in r:  # the sim's channel runs in one process: host and edge are that process
        r.update(host_peak_rss_mb=r["peak_rss_mb"], edge_peak_rss_mb=r["peak_rss_mb"], one_process=True)
    return r


def size_table(sizes_mb: tuple[float, ...] = SIZES_MB, backends: tuple[str, ...] = ("sim", "zmq"),
               sample_rate_hz: float = 1e6, workdir: Path | None = None,
               say: Callable[[str], None] = print, paced: bool = False) -> list[dict[str, Any]]:
    """Per size and backend at 25 dB AWGN: host and edge peak RSS, airtime, wall time, goodput (per airtime)."""
    import tempfile

    rows: list[dict[str, Any]] = []
    say(f"sizes at {SIZE_SNR_DB:g} dB AWGN, {sample_rate_hz / 1e6:g} MS/s; zmq: host and edge in two processes, "
        "sim: one process holds both ends (peak RSS, MB, of the whole process; the payload counts)")
    say(f"{'MB':>6} {'backend':>7} {'ok':>3} {'host MB':>8} {'edge MB':>8} {'air s':>8} {'wall s':>8} "
        f"{'wall/air':>8} {'goodput kb/s':>13}")
    with tempfile.TemporaryDirectory(prefix="airlora-link-bench-") as tmp:
        for size in sizes_mb:
            for backend in backends:
                try:
                    r = size_point(size, backend, sample_rate_hz, Path(workdir or tmp) / backend, paced=paced)
                except RuntimeError as exc:
                    r = {"size_mb": size, "backend": backend, "error": str(exc).splitlines()[0]}
                rows.append(r)
                if "error" in r:
                    say(f"{size:6g} {backend:>7} failed: {r['error']}")
                    continue
                say(f"{size:6g} {backend:>7} {'yes' if r['delivered'] else 'NO':>3} {r['host_peak_rss_mb']:8.0f} "
                    f"{r['edge_peak_rss_mb']:8.0f} {r['airtime_s']:8.1f} {r['wall_s']:8.1f} "
                    f"{r['wall_s'] / r['airtime_s']:8.2f} {r['goodput_bps'] / 1e3:13.1f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.link_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_floats, default=SIZES_MB, help="payload sizes in MB (e.g. 0.1,1,10,30,100)")
    parser.add_argument("--backends", default="sim,zmq", help="backends, comma-separated")
    parser.add_argument("--sample-rate-hz", type=float, default=1e6)
    parser.add_argument("--json", action="store_true", help="print one JSON list at the end")
    parser.add_argument("--host", nargs=2, metavar=("CONFIG", "BYTES"), help=argparse.SUPPRESS)
    parser.add_argument("--timeout-s", type=float, default=900.0, help=argparse.SUPPRESS)
    parser.add_argument("--session", type=int, default=7, help=argparse.SUPPRESS)
    parser.add_argument("--paced", action="store_true",
                        help="zmq: the host plays its samples at the sample rate, as a real radio does (wall ~ airtime)")
    args = parser.parse_args(argv)
    if args.host:
        print(json.dumps(host_side(Path(args.host[0]), int(args.host[1]), args.timeout_s, args.paced, args.session)))
        return 0
    rows = size_table(args.sizes, tuple(b for b in args.backends.split(",") if b), args.sample_rate_hz,
                      say=(lambda _: None) if args.json else print, paced=args.paced)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
