"""Where whole bursts are lost at low SNR (bench, not CI): `python -m radio.bench_acquisition`.

Bursts go through the same link as the receiver-level BLER table (radio/bler_table.py `ReceiverLink`: random
leading noise, AWGN, 1 % CFO, a fresh receiver per burst, no prior). Each burst is classified by what the
receiver reported:

- `ok`: an RxBurst carrying the burst's SIG;
- `false_alarm`: lost, and a burst event (failed SIG or foreign header) started before the burst's preamble:
  the receiver was busy with noise when the burst arrived;
- `sig`: lost, and a burst event started at the burst's preamble (synchronized, SIG failed);
- `missed`: lost, and no burst event at or before it (not detected, or the LTF test refused it).

Harmless false alarms (before a burst that was still received) are counted apart (`false_alarms_ok`).
`--noise-s` also feeds that much noise alone to a fresh receiver (no prior: every path searches) and reports
the preambles it synchronized to and the SIGs it attempted per second, and its speed on noise.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from radio.bler_table import ReceiverLink
from radio.burst_events import RxBurst
from radio.mcs import Mcs, by_name

CLASSES = ("ok", "false_alarm", "sig", "missed")
START_TOLERANCE = 64  # samples: a burst event this close to the true start is the burst itself


def classify(events: list, sig, start: int) -> tuple[str, int]:
    """(class, false alarms before the burst) of one burst whose true start sample is `start`."""
    bursts = [e for e in events if isinstance(e, RxBurst)]
    early = [e for e in bursts if e.sig != sig and e.start_sample < start - START_TOLERANCE]
    if any(e.sig == sig for e in bursts):
        return "ok", len(early)
    if any(abs(e.start_sample - start) <= START_TOLERANCE for e in bursts):
        return "sig", len(early)
    return ("false_alarm" if early else "missed"), len(early)


def measure(mcs: Mcs, snr_db: float, bursts: int, codewords: int, seed: int,
            link: ReceiverLink = ReceiverLink()) -> dict[str, float]:
    """Fractions of `bursts` bursts of `codewords` codewords per class at one SNR, plus false alarms per burst
    before received bursts (`false_alarms_ok`) and the receiver's speed (`ms_per_burst`)."""
    rng = np.random.default_rng([seed, mcs.index, int(round(100 * snr_db)) + 100_000])
    counts: Counter[str] = Counter()
    harmless = 0
    t0 = time.perf_counter()
    for number in range(bursts):
        _, lead, events = link.burst(mcs, snr_db, number, codewords, rng)
        # a burst after `lead` samples of noise starts (RxBurst.start_sample) at sample `lead`
        kind, early = classify(events, link.plan(mcs, number, codewords).sig, lead)
        counts[kind] += 1
        harmless += early if kind == "ok" else 0
    out = {k: counts[k] / bursts for k in CLASSES}
    out["false_alarms_ok"] = harmless / bursts
    out["ms_per_burst"] = 1e3 * (time.perf_counter() - t0) / bursts
    return out


def noise_false_alarms(seconds: float, seed: int, link: ReceiverLink = ReceiverLink()) -> dict[str, float]:
    """Noise alone through a fresh receiver: synchronizations (`synced_per_s`: candidates that passed the
    detector), SIG attempts (`sig_per_s`: LTF tests passed) per second of noise, and MS/s."""
    from radio import burst_rx

    rng = np.random.default_rng([seed, 7])
    n = int(seconds * link.sample_rate_hz)
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
    rx = burst_rx.BurstReceiver(link.sample_rate_hz, link.samples_per_symbol, link.rolloff)
    calls = 0
    synchronize = burst_rx.synchronize

    def counted(*args):
        nonlocal calls
        calls += 1
        return synchronize(*args)

    burst_rx.synchronize = counted
    t0 = time.perf_counter()
    try:
        events = []
        for i in range(0, n, link.chunk_samples):
            events += rx.feed(x[i:i + link.chunk_samples])
        events += rx.flush()
    finally:
        burst_rx.synchronize = synchronize
    elapsed = time.perf_counter() - t0
    return {"synced_per_s": calls / seconds, "sig_per_s": sum(isinstance(e, RxBurst) for e in events) / seconds,
            "msamples_per_s": n / elapsed / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcs", default="ldpc-bpsk-1/4,ldpc-bpsk-1/2", help="comma-separated LDPC MCS names")
    parser.add_argument("--snrs", default="-4,-2,0", help="comma-separated Es/N0 (dB)")
    parser.add_argument("--bursts", type=int, default=200, help="bursts per point")
    parser.add_argument("--codewords", type=int, default=2, help="codewords per burst")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise-s", type=float, default=0.0, help="seconds of noise alone (0: skip)")
    args = parser.parse_args(argv)
    if args.noise_s > 0:
        r = noise_false_alarms(args.noise_s, args.seed)
        print(f"noise {args.noise_s:g} s: {r['synced_per_s']:.1f} synchronizations/s, {r['sig_per_s']:.2f} SIG "
              f"attempts/s, {r['msamples_per_s']:.2f} MS/s")
    print(f"{'mcs':16s} {'Es/N0':>6s} " + " ".join(f"{k:>11s}" for k in CLASSES) + "  fa_ok/burst  ms/burst")
    for name in args.mcs.split(","):
        for snr in (float(s) for s in args.snrs.split(",")):
            r = measure(by_name(name), snr, args.bursts, args.codewords, args.seed)
            print(f"{name:16s} {snr:6.1f} " + " ".join(f"{r[k]:11.3f}" for k in CLASSES)
                  + f"  {r['false_alarms_ok']:11.3f}  {r['ms_per_burst']:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
