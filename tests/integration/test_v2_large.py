"""A paper-sized adapter over frame v2 (issue 16): 28 MB over the zmq cable between two real processes at 20 dB,
with an SNR step in the middle of the transfer; the MCS follows it, and both ends stay in bounded memory.

host/link_bench.py `run_pair` runs the edge (`airlora edge`) and the host in processes of their own, so each
side's peak RSS (VmHWM) is its own. The payload is random bytes and the session is not applied (what is
measured is the link). Slow: about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import pytest

from host.link_bench import pair_config, run_pair

pytestmark = pytest.mark.slow

PAYLOAD_BYTES = 28_000_000
# issue 16's goal: the payload plus under 300 MB on each side. Measured in a fresh clone: host 261 MB, edge 295 MB
# (bound 327). Most of what is left is the interpreter and libraries: numpy + numba (llvmlite's LLVM) take 155 MB
# of every process on import; scipy.signal (54 MB more) is no longer imported (radio/fir.py).
BOUND_MB = PAYLOAD_BYTES / 2**20 + 300


def test_28_mb_over_the_zmq_cable_with_an_snr_step_the_mcs_follows(tmp_path) -> None:
    # 20 dB, then 14 dB from 90 s of received-stream time on (about half of the delivery's airtime)
    raw = pair_config(tmp_path, 20.0, [{"at_s": 90.0, "snr_db": 14.0}], seed=4)
    r = run_pair(raw, PAYLOAD_BYTES, tmp_path)
    mcs_order = [m for i, m in enumerate(r["mcs"]) if i == 0 or m != r["mcs"][i - 1]]
    print(f"28 MB: delivered {r['delivered']}, wall {r['wall_s']:.1f} s (processes {r['process_wall_s']:.1f} s), "
          f"airtime {r['airtime_s']:.1f} s, {r['bursts']} bursts, timeouts {r['timeouts']}, codewords "
          f"{r['codewords_sent']} sent / {r['codewords_ok']} ok, MCS {mcs_order}, host peak RSS "
          f"{r['host_peak_rss_mb']:.0f} MB (before the payload {r['host_rss_before_mb']:.0f}), edge peak RSS "
          f"{r['edge_peak_rss_mb']:.0f} MB (after a warm-up pair filled numba's cache)")
    assert r["delivered"] and r["timeouts"] == 0
    snr = [s for s in r["snr_db"] if s is not None]
    assert snr[1] > 18.0 and snr[-1] < 16.0  # the step happened mid-transfer ...
    assert "ldpc-64qam-5/6" in mcs_order and mcs_order[-1] != "ldpc-64qam-5/6"  # ... and the MCS followed it
    # memory: the payload itself plus a bounded working set on each side (the host's IQ queue is libzmq's copies,
    # bounded by the cable's high-water mark: radio/backends/zmq_iq.py ZmqTxBackend._send)
    assert r["host_peak_rss_mb"] < BOUND_MB
    assert r["edge_peak_rss_mb"] < BOUND_MB
