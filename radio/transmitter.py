"""Packet symbols and IQ bursts: preamble, BPSK rate-1/2 header block, payload block, pilots, RRC shaping."""

from __future__ import annotations

import numpy as np

from radio import fec, interleaver
from radio.frame import HEADER_BITS, Header, bytes_to_bits, payload_with_crc
from radio.mcs import HEADER_MCS, Mcs
from radio.modulation import constellation, map_bits
from radio.preamble import layout, pilot_symbols, preamble_symbols
from radio.pulse import shape

TX_RMS = 0.25  # amplitude of a burst's mean power: 64-QAM peaks stay below full scale
TX_POWER = TX_RMS**2  # nominal mean power of a burst: the channel's SNR reference
GAP_SYMBOLS = 16  # silence between packets of one burst


def block_bits(bits: np.ndarray, mcs: Mcs) -> np.ndarray:
    """The bits a block maps onto its data symbols: coded, repeated, padded to whole symbols, interleaved."""
    coded = np.tile(fec.encode(bits, mcs.rate), mcs.repeat)
    pad = (-coded.size) % mcs.bits_per_symbol
    if pad:
        coded = np.concatenate([coded, np.zeros(pad, np.uint8)])
    return interleaver.interleave(coded)


def payload_block_bits(payload: bytes, mcs: Mcs) -> np.ndarray:
    """The on-air bits of a payload block (what an uncoded BER measurement compares against)."""
    return block_bits(bytes_to_bits(payload_with_crc(payload)), mcs)


def _block(bits: np.ndarray, mcs: Mcs) -> np.ndarray:
    """Data symbols of one block with pilots inserted on its layout."""
    data = map_bits(block_bits(bits, mcs), constellation(mcs.modulation))
    total, data_pos, pilot_pos = layout(data.size)
    block = np.empty(total, np.complex64)
    block[data_pos] = data
    block[pilot_pos] = pilot_symbols(pilot_pos.size)
    return block


def header_data_symbols() -> int:
    """Data symbols in the header block (fixed)."""
    return -(-fec.coded_length(HEADER_BITS, HEADER_MCS.rate) // HEADER_MCS.bits_per_symbol)


def header_block_symbols() -> int:
    """Symbols in the header block, pilots included (fixed)."""
    return layout(header_data_symbols())[0]


def payload_data_symbols(payload_bytes: int, mcs: Mcs) -> int:
    """Data symbols (pilots excluded) carrying a payload of this size plus its CRC-32."""
    coded = fec.coded_length(8 * (payload_bytes + 4), mcs.rate) * mcs.repeat
    return -(-coded // mcs.bits_per_symbol)


def packet_symbols(header: Header, payload: bytes, mcs: Mcs) -> np.ndarray:
    """(n,) complex64 symbols of one packet: STF, LTF, header block, payload block."""
    if header.mcs_index != mcs.index or header.length != len(payload):
        raise ValueError("header does not describe this payload and MCS")
    head = _block(bytes_to_bits(header.pack()), HEADER_MCS)
    body = _block(bytes_to_bits(payload_with_crc(payload)), mcs)
    return np.concatenate([preamble_symbols(), head, body])


def burst(packets: list[np.ndarray], samples_per_symbol: int, rolloff: float) -> np.ndarray:
    """Shape packets (symbol arrays) into one IQ burst at TX_POWER, with a short silence between them."""
    gap = np.zeros(GAP_SYMBOLS, np.complex64)
    parts: list[np.ndarray] = []
    for symbols in packets:
        parts += [symbols, gap]
    symbols = np.concatenate(parts) if parts else np.zeros(0, np.complex64)
    scale = np.float32(TX_RMS * np.sqrt(samples_per_symbol))
    return (shape(symbols, samples_per_symbol, rolloff) * scale).astype(np.complex64)
