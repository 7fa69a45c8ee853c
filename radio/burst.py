"""The v2 burst layout: one preamble, a SIG header, MAP codewords, LDPC data codewords, a pilot grid, a gap.

The one source of truth for where every symbol of a v2 burst sits (docs/design/link_v2.md section 2); the
transmitter (radio/burst_tx.py), the airtime model (radio/airtime.py) and the receiver all import it.

    | STF 128 | LTF2 128 | SIG 856 | MAP (M codewords) | DATA codeword 0 | ... | DATA n-1 | closing pilots | gap 16 |

Symbol indices count from the first STF symbol. The *body* starts at SIG (index PREAMBLE_SYMBOLS). Its
*content* (SIG, MAP, data, in that order) fills every body position that is not a pilot. Pilot groups of
PILOT_GROUP known BPSK symbols sit at body positions 256 g (g = 0 .. G-1, G = ceil(content / 252), one per
PILOT_PERIOD whatever the codeword boundaries), and one closing group follows the last content symbol. So
content symbol c is at burst index 256 + c + 4 (c // 252 + 1).

- SIG: `SigHeader` (24 bytes + CRC-16), coded like the v1 MCS 0 (bpsk-1/4) header: K=7 rate 1/2, the coded
  bits sent twice, interleaved, BPSK: (208 + 6) x 2 x 2 = 856 symbols.
- MAP (repair bursts with several runs): the runs as (offset delta, count) varints in LDPC n=648 rate-1/2
  codewords of 38 bytes + CRC-16 (radio/codeword.py), on BPSK when the burst's MCS is BPSK (sent twice when
  it is ldpc-bpsk-1/4) and QPSK otherwise: always the more robust of the burst's MCS and qpsk-1/2.
- DATA: codeword i carries payload bytes [offset_i, offset_i + L) (radio/codeword.py); its coded bits map
  straight onto symbols, MSB first; an MCS with repeat r sends each codeword r times in a row.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from radio import fec, interleaver
from radio.errors import FrameError, RadioError
from radio.mcs import LDPC_MCS_TABLE, MCS_TABLE, Mcs
from radio.modulation import BITS_PER_SYMBOL, constellation, map_bits
from radio.preamble import ltf2_symbols, stf_symbols
from radio.transmitter import GAP_SYMBOLS, block_bits

BURST_VERSION = 2
PREAMBLE_SYMBOLS = 256  # STF 128 + LTF2 128
PILOT_GROUP = 4  # known BPSK symbols per pilot group
PILOT_PERIOD = 256  # body symbols from one pilot group to the next (the group included)
PILOT_CONTENT = PILOT_PERIOD - PILOT_GROUP  # content symbols between two groups
PILOT_PATTERN = np.array([1.0, -1.0, 1.0, 1.0], np.float32)  # a group: this pattern times the group's sign
PILOT_SIGN_SEED = 0xB2F1
PILOT_SIGN_PERIOD = 4096  # group signs repeat after this many groups (4 s of symbols at 250 ksym/s)
FLAG_LAST = 0x01  # last burst of a pass
FLAG_PROBE = 0x02  # a probe burst
KNOWN_FLAGS = FLAG_LAST | FLAG_PROBE
MAX_CODEWORDS = 0xFFFF  # SIG codewords is u16
MAX_MAP_CODEWORDS = 0xFF  # SIG map_codewords is u8
MAX_PAYLOAD_BYTES = (1 << 40) - 1  # SIG first_offset and payload_bytes are u40
SIG_MCS = MCS_TABLE[0]  # bpsk-1/4: K=7 rate 1/2 sent twice, BPSK
MAP_CODE_N = 648
MAP_CODE_RATE = "1/2"
CRC_BITS = 16

_SIG = struct.Struct(">BBBBHII5s5s")  # version, mcs, flags, map_codewords, codewords, session, burst, offsets


def code_info_bits(code_n: int, rate: str) -> int:
    """k of an 802.11n LDPC code: n x rate (exact for all twelve codes)."""
    num, den = rate.split("/")
    return code_n * int(num) // int(den)


def codeword_bytes(mcs: Mcs) -> int:
    """L: payload bytes one data codeword of an LDPC MCS carries: floor((k - 16) / 8)."""
    _check_ldpc(mcs)
    return (code_info_bits(mcs.code_n, mcs.rate) - CRC_BITS) // 8


MAP_BYTES_PER_CODEWORD = (code_info_bits(MAP_CODE_N, MAP_CODE_RATE) - CRC_BITS) // 8  # 38


def _check_ldpc(mcs: Mcs) -> None:
    if mcs.family != "ldpc":
        raise RadioError(f"MCS {mcs.name} is not an LDPC MCS; v2 bursts carry ldpc-* MCSs only")


def codeword_symbols(mcs: Mcs) -> int:
    """Symbols of one data codeword, all its repeats: n / bits_per_symbol x repeat."""
    _check_ldpc(mcs)
    return mcs.code_n // mcs.bits_per_symbol * mcs.repeat


@dataclass(frozen=True)
class MapScheme:
    """How MAP codewords go on air in a burst of some MCS."""

    modulation: str
    repeat: int

    @property
    def symbols(self) -> int:
        """Symbols of one MAP codeword, all its repeats."""
        return MAP_CODE_N // BITS_PER_SYMBOL[self.modulation] * self.repeat


def map_scheme(mcs: Mcs) -> MapScheme:
    """MAP modulation: BPSK in a BPSK burst (sent twice at ldpc-bpsk-1/4), else QPSK; always code 648-1/2."""
    _check_ldpc(mcs)
    return MapScheme("bpsk", mcs.repeat) if mcs.modulation == "bpsk" else MapScheme("qpsk", 1)


# ----- SIG -----

@dataclass(frozen=True)
class SigHeader:
    """The v2 burst header: 24 bytes of fields, big-endian, then CRC-16/CCITT (26 bytes on air)."""

    mcs: int  # index into the LDPC MCS table (16..30)
    flags: int  # FLAG_LAST | FLAG_PROBE
    map_codewords: int  # MAP codewords that follow the SIG (0: one run at first_offset)
    codewords: int  # data codewords (each sent mcs.repeat times)
    session: int
    burst: int
    first_offset: int  # payload byte of data codeword 0
    payload_bytes: int  # size of the whole payload
    version: int = BURST_VERSION

    SIZE = _SIG.size + 2  # 26

    @property
    def last(self) -> bool:
        """Last burst of a pass."""
        return bool(self.flags & FLAG_LAST)

    @property
    def probe(self) -> bool:
        """A probe burst."""
        return bool(self.flags & FLAG_PROBE)

    @property
    def scheme(self) -> Mcs:
        """The burst's MCS."""
        return LDPC_MCS_TABLE[self.mcs - LDPC_MCS_TABLE[0].index]

    def pack(self) -> bytes:
        """26 bytes; RadioError when a field does not fit its width or names no LDPC MCS."""
        self._check(RadioError)
        body = _SIG.pack(self.version, self.mcs, self.flags, self.map_codewords, self.codewords, self.session,
                         self.burst, self.first_offset.to_bytes(5, "big"), self.payload_bytes.to_bytes(5, "big"))
        return body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")

    @classmethod
    def unpack(cls, raw: bytes) -> SigHeader:
        """Parse 26 bytes; FrameError on a bad length, CRC, version, MCS, unknown flag or offset past the end."""
        if len(raw) != cls.SIZE:
            raise FrameError(f"SIG has {len(raw)} bytes, expected {cls.SIZE}")
        body, crc = bytes(raw[:-2]), int.from_bytes(raw[-2:], "big")
        if binascii.crc_hqx(body, 0xFFFF) != crc:
            raise FrameError("SIG CRC mismatch")
        version, mcs, flags, map_cw, cw, session, burst, first, total = _SIG.unpack(body)
        sig = cls(mcs, flags, map_cw, cw, session, burst, int.from_bytes(first, "big"),
                  int.from_bytes(total, "big"), version)
        sig._check(FrameError)
        return sig

    def _check(self, error: type[RadioError]) -> None:
        first = LDPC_MCS_TABLE[0].index
        widths = {"version": 8, "mcs": 8, "flags": 8, "map_codewords": 8, "codewords": 16, "session": 32,
                  "burst": 32, "first_offset": 40, "payload_bytes": 40}
        for name, bits in widths.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 0 <= value < 1 << bits:
                raise error(f"SIG {name} = {value!r} does not fit u{bits}")
        if self.version != BURST_VERSION:
            raise error(f"SIG version {self.version} is not supported (expected {BURST_VERSION})")
        if not first <= self.mcs < first + len(LDPC_MCS_TABLE):
            raise error(f"SIG names MCS index {self.mcs}; LDPC MCSs are {first}..{first + len(LDPC_MCS_TABLE) - 1}")
        if self.flags & ~KNOWN_FLAGS:
            raise error(f"SIG flags {self.flags:#04x} set unknown bits")
        if self.first_offset > self.payload_bytes:
            raise error(f"SIG first_offset {self.first_offset} is past the payload of {self.payload_bytes} bytes")


SIG_BITS = 8 * SigHeader.SIZE  # 208
SIG_SYMBOLS = fec.coded_length(SIG_BITS, SIG_MCS.rate) * SIG_MCS.repeat  # 856 BPSK symbols


def sig_symbols(sig: SigHeader) -> np.ndarray:
    """(856,) complex64 BPSK symbols of the SIG (the v1 bpsk-1/4 block rule: code, repeat, interleave)."""
    bits = np.unpackbits(np.frombuffer(sig.pack(), np.uint8))
    return map_bits(block_bits(bits, SIG_MCS), constellation("bpsk"))


def decode_sig(llr: np.ndarray) -> SigHeader:
    """(856,) SIG LLRs (log P0/P1) -> the header: deinterleave, add the two copies, Viterbi, parse (FrameError)."""
    x = np.asarray(llr, np.float32)
    if x.shape != (SIG_SYMBOLS,):
        raise FrameError(f"SIG needs {SIG_SYMBOLS} LLRs, got shape {x.shape}")
    coded = interleaver.deinterleave(x).reshape(SIG_MCS.repeat, -1).sum(axis=0)
    bits = fec.decode(coded, SIG_MCS.rate, SIG_BITS)
    return SigHeader.unpack(np.packbits(bits).tobytes())


# ----- MAP: runs as varints -----

@dataclass(frozen=True)
class CodewordRun:
    """`count` consecutive codewords from payload byte `offset` (codeword j at offset + j L)."""

    offset: int
    count: int


def _varint(value: int, out: bytearray) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(raw):
            raise FrameError("MAP ends inside a varint")
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise FrameError("MAP varint longer than 64 bits")


def encode_runs(runs: tuple[CodewordRun, ...] | list[CodewordRun], bytes_per_codeword: int) -> bytes:
    """The runs as varint pairs (zigzag offset delta, count); the delta of run i is from the end of run i - 1
    (offset + count L), that of run 0 from runs[0].offset (so 0: the SIG's first_offset already says it)."""
    out = bytearray()
    base = runs[0].offset if runs else 0
    for run in runs:
        if run.count < 1 or run.offset < 0:
            raise RadioError(f"a run needs count >= 1 and offset >= 0, got {run}")
        delta = run.offset - base
        _varint((delta << 1) if delta >= 0 else ((-delta << 1) - 1), out)
        _varint(run.count, out)
        base = run.offset + run.count * bytes_per_codeword
    return bytes(out)


def decode_runs(raw: bytes, first_offset: int, bytes_per_codeword: int, codewords: int) -> tuple[CodewordRun, ...]:
    """Parse runs until their counts add up to `codewords` (the rest is zero padding); FrameError if they cannot."""
    runs: list[CodewordRun] = []
    pos, base, total = 0, first_offset, 0
    while total < codewords:
        zigzag, pos = _read_varint(raw, pos)
        count, pos = _read_varint(raw, pos)
        offset = base + ((zigzag >> 1) if not zigzag & 1 else -((zigzag + 1) >> 1))
        if count < 1 or offset < 0 or total + count > codewords:
            raise FrameError(f"MAP run {len(runs)} (offset {offset}, count {count}) is impossible for "
                             f"{codewords} codewords")
        runs.append(CodewordRun(offset, count))
        total += count
        base = offset + count * bytes_per_codeword
    return tuple(runs)


def run_offsets(runs: tuple[CodewordRun, ...] | list[CodewordRun], bytes_per_codeword: int) -> np.ndarray:
    """(sum of counts,) int64 payload byte offset of each data codeword, in burst order."""
    if not runs:
        return np.zeros(0, np.int64)
    return np.concatenate([r.offset + bytes_per_codeword * np.arange(r.count, dtype=np.int64) for r in runs])


def map_codewords_for(runs: tuple[CodewordRun, ...] | list[CodewordRun], bytes_per_codeword: int) -> int:
    """MAP codewords a burst with these runs needs: 0 for a single run, else ceil(varint bytes / 38)."""
    if len(runs) <= 1:
        return 0
    return -(-len(encode_runs(runs, bytes_per_codeword)) // MAP_BYTES_PER_CODEWORD)


# ----- pilots -----

@lru_cache(maxsize=None)
def _pilot_signs() -> np.ndarray:
    signs = 1.0 - 2.0 * np.random.default_rng(PILOT_SIGN_SEED).integers(0, 2, PILOT_SIGN_PERIOD)
    out = signs.astype(np.float32)
    out.flags.writeable = False
    return out


def pilot_group_symbols(groups: np.ndarray | int) -> np.ndarray:
    """(..., PILOT_GROUP) complex64 known symbols of pilot group(s) g (counted from the SIG's group 0)."""
    g = np.asarray(groups, np.int64)
    return (_pilot_signs()[g % PILOT_SIGN_PERIOD][..., None] * PILOT_PATTERN).astype(np.complex64)


@lru_cache(maxsize=None)
def preamble_symbols() -> np.ndarray:
    """(256,) complex64: the v1 STF, then the v2 LTF (LTF2)."""
    out = np.concatenate([stf_symbols(), ltf2_symbols()])
    out.flags.writeable = False
    return out


# ----- layout -----

def content_symbols(mcs: Mcs, codewords: int, map_codewords: int = 0) -> int:
    """Symbols of SIG + MAP + data (pilots excluded)."""
    return SIG_SYMBOLS + map_codewords * map_scheme(mcs).symbols + codewords * codeword_symbols(mcs)


def pilot_groups(content: int) -> int:
    """Pilot groups of a body with `content` symbols: one per period it spans, plus the closing group."""
    return -(-content // PILOT_CONTENT) + 1


def total_symbols(mcs: Mcs, codewords: int, map_codewords: int = 0) -> int:
    """Every symbol of a burst: preamble, SIG, MAP, data, pilot groups (closing one included), gap."""
    content = content_symbols(mcs, codewords, map_codewords)
    return PREAMBLE_SYMBOLS + content + PILOT_GROUP * pilot_groups(content) + GAP_SYMBOLS


@dataclass(frozen=True)
class BurstLayout:
    """Where every symbol of a burst of `codewords` data and `map_codewords` MAP codewords at `mcs` sits.

    Index arrays are int64 burst symbol indices (0 = first STF symbol). The shaped waveform's sample
    s * sps + (taps - 1) / 2 is the peak of symbol s (radio/burst_tx.py: no delay beyond the RRC's own).
    """

    mcs: Mcs
    codewords: int
    map_codewords: int = 0

    @classmethod
    def from_sig(cls, sig: SigHeader) -> BurstLayout:
        """The layout a decoded SIG announces."""
        return cls(sig.scheme, sig.codewords, sig.map_codewords)

    def __post_init__(self) -> None:
        _check_ldpc(self.mcs)
        if not 0 <= self.codewords <= MAX_CODEWORDS or not 0 <= self.map_codewords <= MAX_MAP_CODEWORDS:
            raise RadioError(f"a burst carries 0..{MAX_CODEWORDS} codewords and 0..{MAX_MAP_CODEWORDS} MAP "
                             f"codewords, got {self.codewords} and {self.map_codewords}")

    @cached_property
    def content_symbols(self) -> int:
        """SIG + MAP + data symbols."""
        return content_symbols(self.mcs, self.codewords, self.map_codewords)

    @cached_property
    def pilot_groups(self) -> int:
        """Pilot groups, the closing group included."""
        return pilot_groups(self.content_symbols)

    @property
    def body_symbols(self) -> int:
        """Symbols from the SIG's first pilot to the closing group's last (content + pilots)."""
        return self.content_symbols + PILOT_GROUP * self.pilot_groups

    @property
    def total_symbols(self) -> int:
        """All symbols of the burst, preamble to gap."""
        return PREAMBLE_SYMBOLS + self.body_symbols + GAP_SYMBOLS

    @property
    def preamble(self) -> slice:
        """STF + LTF2."""
        return slice(0, PREAMBLE_SYMBOLS)

    @property
    def gap(self) -> slice:
        """The closing silence (zero symbols)."""
        return slice(self.total_symbols - GAP_SYMBOLS, self.total_symbols)

    @property
    def map_scheme(self) -> MapScheme:
        """Modulation and repeat of the MAP codewords."""
        return map_scheme(self.mcs)

    @property
    def map_content_start(self) -> int:
        """Content index of the first MAP symbol."""
        return SIG_SYMBOLS

    @property
    def data_content_start(self) -> int:
        """Content index of data codeword 0's first symbol."""
        return SIG_SYMBOLS + self.map_codewords * self.map_scheme.symbols

    @staticmethod
    def content_index(content: np.ndarray | int) -> np.ndarray:
        """Burst symbol index of content symbol(s) c: 256 + c + 4 (c // 252 + 1)."""
        c = np.asarray(content, np.int64)
        return PREAMBLE_SYMBOLS + c + PILOT_GROUP * (c // PILOT_CONTENT + 1)

    def sig_indices(self) -> np.ndarray:
        """(856,) symbol indices of the SIG."""
        return self.content_index(np.arange(SIG_SYMBOLS))

    def map_indices(self) -> np.ndarray:
        """(map_codewords, repeat, symbols per copy) symbol indices of the MAP codewords."""
        s = self.map_scheme
        per_copy = s.symbols // s.repeat
        c = self.map_content_start + np.arange(self.map_codewords * s.symbols).reshape(-1, s.repeat, per_copy)
        return self.content_index(c)

    def codeword_indices(self, first: int = 0, count: int | None = None) -> np.ndarray:
        """(count, repeat, symbols per copy) symbol indices of data codewords first .. first + count - 1."""
        count = self.codewords - first if count is None else count
        if first < 0 or count < 0 or first + count > self.codewords:
            raise RadioError(f"codewords {first}..{first + count - 1} outside 0..{self.codewords - 1}")
        per = codeword_symbols(self.mcs)
        start = self.data_content_start + first * per
        c = start + np.arange(count * per).reshape(count, self.mcs.repeat, per // self.mcs.repeat)
        return self.content_index(c)

    def codeword_span(self, i: int) -> tuple[int, int]:
        """(first, stop) symbol indices of data codeword i, all repeats (pilots inside included)."""
        idx = self.codeword_indices(i, 1)
        return int(idx[0, 0, 0]), int(idx[0, -1, -1]) + 1

    def pilot_indices(self) -> np.ndarray:
        """(pilot_groups, 4) symbol indices of the pilot groups, the closing one last."""
        starts = PILOT_PERIOD * np.arange(self.pilot_groups, dtype=np.int64)
        starts[-1] = self.content_symbols + PILOT_GROUP * (self.pilot_groups - 1)
        return PREAMBLE_SYMBOLS + starts[:, None] + np.arange(PILOT_GROUP)

    def pilot_symbols(self) -> np.ndarray:
        """(pilot_groups, 4) complex64 known symbols at pilot_indices()."""
        return pilot_group_symbols(np.arange(self.pilot_groups))

    def body_pilots(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Pilots among body positions start..stop-1 (body position = symbol index - 256): (positions int64,
        symbols complex64), ascending; O(stop - start)."""
        regular = self.pilot_groups - 1
        g = np.arange(max(0, (start - PILOT_GROUP) // PILOT_PERIOD + 1), min(regular, (stop - 1) // PILOT_PERIOD + 1))
        closing = self.content_symbols + PILOT_GROUP * regular
        pos = np.concatenate([(PILOT_PERIOD * g[:, None] + np.arange(PILOT_GROUP)).ravel(),
                              closing + np.arange(PILOT_GROUP)])
        values = np.concatenate([pilot_group_symbols(g).ravel(), pilot_group_symbols(regular)])
        keep = (pos >= start) & (pos < stop)
        return pos[keep], values[keep]
