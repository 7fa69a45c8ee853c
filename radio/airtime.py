"""Airtime of a payload on the link, computed from the packet layout without modulating anything.

`burst_samples` and `airtime_s` are exact for one transmission at a given MCS; `delivery_airtime_s` is what a
delivery is expected to take at the MCS the link picks for an SNR (repeats included); `shannon_airtime_s` is
the ideal channel's figure over the same bandwidth.

v2 bursts (radio/burst.py): `burst_symbols` / `burst_samples_v2` are exact closed forms of the layout (equal to
what radio/burst_tx.burst_chunks emits), `pass_bursts` cuts one pass of a payload into bursts of a given
airtime; all O(1) in the payload size. `delivery_airtime_s_v2` is the expected airtime of a v2 delivery by the
sender's rules (probe, full bursts, tail picks, repeats from the BLER curves); measured against
radio.link_v2.transfer_v2 within 0.4 % at 5/15/25 dB (200 kB, 1 MS/s, 1 s bursts).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING


from radio import burst as burst_layout
from radio import mcs as mcs_module
from radio.mcs import Mcs
from radio.preamble import layout, preamble_symbols
from radio.pulse import rrc_taps
from radio.transmitter import GAP_SYMBOLS, header_block_symbols, payload_data_symbols

if TYPE_CHECKING:
    from radio.link import LinkSettings

MAX_EXPECTED_PER = 0.9  # the expected-repeats inflation 1 / (1 - PER) assumes at most this PER


def packet_symbols_count(payload_bytes: int, mcs: Mcs) -> int:
    """Symbols of one packet (preamble, header block, payload block) carrying payload_bytes."""
    return preamble_symbols().size + header_block_symbols() + layout(payload_data_symbols(payload_bytes, mcs))[0]


def burst_samples(payload_bytes: int, packet_payload_bytes: int, mcs: Mcs, samples_per_symbol: int,
                  rolloff: float) -> int:
    """Samples of the burst `radio.transmitter.burst` makes for a payload cut into packets: exact."""
    full, rest = divmod(payload_bytes, packet_payload_bytes)
    sizes = [packet_payload_bytes] * full + ([rest] if rest else [])
    sizes = sizes or [0]
    symbols = sum(packet_symbols_count(s, mcs) + GAP_SYMBOLS for s in sizes)
    return symbols * samples_per_symbol + rrc_taps(samples_per_symbol, rolloff).size - 1


def airtime_s(payload_bytes: int, packet_payload_bytes: int, mcs: Mcs, samples_per_symbol: int, rolloff: float,
              sample_rate_hz: float) -> float:
    """Seconds on air for one transmission of every packet (no retransmissions)."""
    return burst_samples(payload_bytes, packet_payload_bytes, mcs, samples_per_symbol, rolloff) / sample_rate_hz


def delivery_mcs(settings: LinkSettings, snr_db: float) -> Mcs:
    """The MCS link adaptation picks for a measured SNR at the settings' target packet error rate."""
    return mcs_module.select(snr_db, settings.target_per)


def packet_success_rate(settings: LinkSettings) -> float:
    """1 - target PER (capped at 0.9): one transmission's airtime divided by it counts the expected repeats."""
    return 1.0 - min(settings.target_per, MAX_EXPECTED_PER)


def delivery_airtime_s(settings: LinkSettings, payload_bytes: int, snr_db: float) -> float:
    """Expected airtime of one delivery at the MCS picked for snr_db: one transmission inflated by the repeats."""
    mcs = delivery_mcs(settings, snr_db)
    samples = burst_samples(payload_bytes, settings.packet_payload_bytes, mcs, settings.samples_per_symbol,
                            settings.rolloff)
    return samples / settings.sample_rate_hz / packet_success_rate(settings)


def shannon_airtime_s(settings: LinkSettings, payload_bytes: int, snr_db: float) -> float:
    """The ideal channel's airtime (the paper's cost): bits / (occupied bandwidth x log2(1 + SNR))."""
    capacity = settings.occupied_bandwidth_hz * math.log2(1.0 + 10 ** (snr_db / 10.0))
    return 8.0 * payload_bytes / max(capacity, 1e-9)


# ----- v2 bursts -----

RUNS_PER_MAP_CODEWORD = 12  # planning figure: a run takes ~3 varint bytes, a MAP codeword holds 38


def codeword_bytes(mcs: Mcs) -> int:
    """Payload bytes one data codeword of an LDPC MCS carries (119 / 160 / 180 / 200 at n = 1944)."""
    return burst_layout.codeword_bytes(mcs)


def burst_symbols(mcs: Mcs, codewords: int, map_codewords: int = 0) -> int:
    """Symbols of a v2 burst: preamble 256 + SIG 856 + MAP + data + pilot groups (closing one included) + gap 16."""
    return burst_layout.total_symbols(mcs, codewords, map_codewords)


def burst_samples_v2(settings: LinkSettings, mcs: Mcs, codewords: int, map_codewords: int = 0) -> int:
    """Samples of a v2 burst as burst_tx.burst_chunks emits them: symbols x sps + len(RRC taps) - 1 (exact)."""
    sps = settings.samples_per_symbol
    return burst_symbols(mcs, codewords, map_codewords) * sps + rrc_taps(sps, settings.rolloff).size - 1


def map_codewords_for_runs(n_runs: int) -> int:
    """MAP codewords a repair burst of n_runs runs is planned with: 0 for one run, else ceil(n_runs / 12).

    A plan's exact count depends on its varint sizes (burst.map_codewords_for); this is the planning figure.
    """
    return 0 if n_runs <= 1 else -(-n_runs // RUNS_PER_MAP_CODEWORD)


def max_burst_codewords(settings: LinkSettings, mcs: Mcs, burst_airtime_s: float, map_codewords: int = 0) -> int:
    """Most data codewords a burst of at most burst_airtime_s holds (at least 1, at most burst.MAX_CODEWORDS)."""
    sps = settings.samples_per_symbol
    budget = int((burst_airtime_s * settings.sample_rate_hz - (rrc_taps(sps, settings.rolloff).size - 1)) // sps)
    body = budget - burst_layout.PREAMBLE_SYMBOLS - burst_layout.GAP_SYMBOLS - burst_layout.PILOT_GROUP  # closing
    periods, rest = divmod(max(body, 0), burst_layout.PILOT_PERIOD)
    content = periods * burst_layout.PILOT_CONTENT + max(rest - burst_layout.PILOT_GROUP, 0)
    fixed = burst_layout.content_symbols(mcs, 0, map_codewords)
    n = max((content - fixed) // burst_layout.codeword_symbols(mcs), 1)
    return min(n, burst_layout.MAX_CODEWORDS)


def pass_bursts(payload_bytes: int, mcs: Mcs, settings: LinkSettings,
                burst_airtime_s: float) -> tuple[int, int, int]:
    """One first pass of a payload: (full bursts, codewords per full burst, codewords of the last partial burst).

    full x per_full + last = ceil(payload_bytes / L) and last < per_full; a full burst lasts at most
    burst_airtime_s (or holds one codeword when even one is longer).
    """
    per_full = max_burst_codewords(settings, mcs, burst_airtime_s)
    total = -(-payload_bytes // codeword_bytes(mcs))
    full, last = divmod(total, per_full)
    return full, per_full, last


def burst_efficiency(settings: LinkSettings, mcs: Mcs, burst_airtime_s: float) -> float:
    """Payload bits of a full burst over its symbols x the MCS's nominal info bits per symbol: eta_m of the
    selector (framing, pilots, CRC and filler all counted; exact for the layout)."""
    n = max_burst_codewords(settings, mcs, burst_airtime_s)
    payload_bits = 8 * n * codeword_bytes(mcs)
    return payload_bits / (mcs.info_bits_per_symbol * burst_symbols(mcs, n))


def codewords_airtime_s(settings: LinkSettings, mcs: Mcs, codewords: int, burst_airtime_s: float) -> float:
    """Seconds on air to send `codewords` data codewords in one run per burst, bursts as full as burst_airtime_s
    allows (exact for single-run bursts)."""
    if codewords <= 0:
        return 0.0
    per_full = max_burst_codewords(settings, mcs, burst_airtime_s)
    full, last = divmod(codewords, per_full)
    samples = full * burst_samples_v2(settings, mcs, per_full) + (burst_samples_v2(settings, mcs, last) if last else 0)
    return samples / settings.sample_rate_hz


def pass_airtime_s(settings: LinkSettings, payload_bytes: int, mcs: Mcs, burst_airtime_s: float) -> float:
    """One first pass of payload_bytes at one MCS (no probe, no repeats): exact."""
    return codewords_airtime_s(settings, mcs, -(-payload_bytes // codeword_bytes(mcs)), burst_airtime_s)
