"""Exact airtime of a payload at an MCS, from the packet layout, without modulating anything."""

from __future__ import annotations

from radio.mcs import Mcs
from radio.preamble import layout, preamble_symbols
from radio.pulse import rrc_taps
from radio.transmitter import GAP_SYMBOLS, header_block_symbols, payload_data_symbols


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
