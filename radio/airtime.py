"""Airtime of a payload on the link, computed from the packet layout without modulating anything.

`burst_samples` and `airtime_s` are exact for one transmission at a given MCS; `delivery_airtime_s` is what a
delivery is expected to take at the MCS the link picks for an SNR (repeats included); `shannon_airtime_s` is
the ideal channel's figure over the same bandwidth.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

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
