"""Expected airtime of a v2 delivery (probe, first pass, tail picks, repeats) by transfer_v2's sender rules.

Sits above radio/airtime.py (exact burst sizes), radio/arq.py (probe and tail rules) and radio/link_v2.py
(the selector it builds), so none of them imports upward. The policies' cost model and the benchmarks use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radio import burst as burst_layout
from radio import mcs as mcs_module
from radio.airtime import RUNS_PER_MAP_CODEWORD, burst_samples_v2, codeword_bytes, delivery_airtime_s, max_burst_codewords
from radio.arq import PROBE_MCS, TAIL_BURSTS
from radio.link_adaptation import McsSelector, TailInfo
from radio.link_v2 import make_selector
from radio.mcs import Mcs

if TYPE_CHECKING:
    from radio.link import LinkSettings


def delivery_airtime_s_v2(settings: LinkSettings, payload_bytes: int, snr_db: float, mcs: Mcs | None = None,
                          probe_airtime_s: float = 0.05, rtt_s: float = 0.1) -> float:
    """Expected airtime of a v2 delivery over AWGN at snr_db, by radio.link_v2.transfer_v2's sender rules.

    = the probe burst (probe_airtime_s at ldpc-qpsk-1/2)
    + one pass of the rest: full bursts at `mcs` (default: the selector's pick at snr_db, outer loop at 0 dB),
      then, once what is left fits in arq.TAIL_BURSTS bursts at the fastest MCS, one burst at a time at the
      selector's tail pick (TailInfo with rtt_s, the sender's first guess of the report round trip)
    + expected repeats N (1 - p1) / p2 codewords per MCS from the BLER curves, each a run of its own
      (one MAP codeword per 12 runs), plus one more burst's fixed samples when a failure falls in the last
      window of `window_bursts` bursts (no later burst carries its repair).
    O(bursts of the tail) in the payload size.
    """
    selector = make_selector(settings)
    snrs = np.full(64, float(snr_db))
    burst_s = settings.burst_airtime_s
    probe = mcs_module.by_name(PROBE_MCS)
    probe_n = min(max_burst_codewords(settings, probe, probe_airtime_s), -(-payload_bytes // codeword_bytes(probe)))
    bursts = [(probe, probe_n)]
    rest = max(payload_bytes - probe_n * codeword_bytes(probe), 0)
    fastest = mcs_module.LDPC_MCS_TABLE[-1]
    tail_bytes = TAIL_BURSTS * codeword_bytes(fastest) * max_burst_codewords(settings, fastest, burst_s)
    pick = mcs or selector.pick(snrs)
    per_full = max_burst_codewords(settings, pick, burst_s)
    full_bytes = per_full * codeword_bytes(pick)
    full = min(max(-(-(rest - tail_bytes) // full_bytes), 0), rest // full_bytes)  # full bursts before the tail
    rest -= full * full_bytes
    while rest > 0:
        m = mcs or selector.pick(snrs, TailInfo(rest, rtt_s) if rest <= tail_bytes else None)
        n = min(max_burst_codewords(settings, m, burst_s), -(-rest // codeword_bytes(m)))
        bursts.append((m, n))
        rest -= n * codeword_bytes(m)
    samples = full * burst_samples_v2(settings, pick, per_full)
    samples += sum(burst_samples_v2(settings, m, n) for m, n in bursts)
    counts: dict[Mcs, int] = {pick: full * per_full} if full else {}
    for m, n in bursts[1:]:
        counts[m] = counts.get(m, 0) + n
    window = max(1, getattr(settings, "window_bursts", 1))
    last = sum(n for _, n in bursts[-window:]) if len(bursts) > 1 else 0
    p_last = 1.0
    for m, n in counts.items():
        p1, p2 = _success(selector, m, snr_db)
        repeats = n * (1.0 - p1) / max(p2, 1e-12)  # expected repeats with chase combining, as the selector
        maps = repeats / RUNS_PER_MAP_CODEWORD * burst_layout.map_scheme(m).symbols
        samples += (repeats * codeword_symbols_with_pilots(m) + maps) * settings.samples_per_symbol
        p_last *= p1 ** min(n, last)
    last_mcs = bursts[-1][0]
    samples += (1.0 - p_last) * burst_samples_v2(settings, last_mcs, 0)  # a repair burst after the pass
    return samples / settings.sample_rate_hz


def codeword_symbols_with_pilots(mcs: Mcs) -> float:
    """Symbols one data codeword takes in a long burst, its share of the pilot groups included."""
    return burst_layout.codeword_symbols(mcs) * burst_layout.PILOT_PERIOD / burst_layout.PILOT_CONTENT


def _success(selector, mcs: Mcs, snr_db: float) -> tuple[float, float]:
    """(p1, p2): first-pass and chase-combined codeword success of `mcs` at snr_db from the BLER curves."""
    if not hasattr(selector, "predicted_bler"):  # FixedMcs: read the shipped curves directly
        selector = McsSelector.from_shipped()
    p1 = 1.0 - float(selector.predicted_bler(mcs, snr_db))
    p2 = 1.0 - float(selector.predicted_bler(mcs, snr_db, combined=True))
    return p1, p2


def expected_airtime_s(settings: LinkSettings, payload_bytes: int, snr_db: float) -> float:
    """Expected airtime of one delivery on the configured frame: the v2 model above with `frame: v2`, else v1's
    radio.airtime.delivery_airtime_s (one pass inflated by the packet repeats)."""
    if getattr(settings, "frame", "v1") == "v2":
        return delivery_airtime_s_v2(settings, payload_bytes, snr_db)
    return delivery_airtime_s(settings, payload_bytes, snr_db)
