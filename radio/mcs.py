"""Modulation and coding schemes, and link adaptation from a measured SNR.

The SNR each MCS needs is not guessed: `airlora mcs-table` measures packet error rate curves through the
full waveform receiver over AWGN and writes them to radio/mcs_per_curves.json; `select` reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from radio.errors import RadioError

PER_CURVES_FILE = Path(__file__).with_name("mcs_per_curves.json")
BLER_CURVES_FILE = Path(__file__).with_name("mcs_bler_curves.json")  # LDPC family: `airlora mcs-table --family ldpc`


@dataclass(frozen=True)
class Mcs:
    """One modulation and coding scheme."""

    index: int
    name: str
    modulation: str
    rate: str  # rate of the code (the convolutional code after puncturing, or the LDPC code)
    repeat: int = 1  # each coded block is sent this many times (LLRs are summed): rate / repeat overall
    family: str = "conv"  # "conv": K=7 in v1 packets; "ldpc": 802.11n LDPC codewords in v2 bursts
    code_n: int = 0  # LDPC block length (bits) for the ldpc family, 0 for conv

    @property
    def bits_per_symbol(self) -> int:
        return BITS_PER_SYMBOL[self.modulation]

    @property
    def code_rate(self) -> float:
        num, den = self.rate.split("/")
        return int(num) / int(den) / self.repeat

    @property
    def info_bits_per_symbol(self) -> float:
        return self.bits_per_symbol * self.code_rate


BITS_PER_SYMBOL = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
LDPC_FIRST_INDEX = 16
LDPC_CODE_N = 1944

MCS_TABLE: tuple[Mcs, ...] = (
    Mcs(0, "bpsk-1/4", "bpsk", "1/2", repeat=2),
    *(Mcs(i + 1, f"{mod}-{rate}", mod, rate) for i, (mod, rate) in enumerate([
        ("bpsk", "1/2"), ("qpsk", "1/2"), ("qpsk", "3/4"), ("16qam", "1/2"),
        ("16qam", "3/4"), ("64qam", "2/3"), ("64qam", "3/4"),
    ])),
)
HEADER_MCS = MCS_TABLE[1]  # headers always go out as BPSK rate 1/2

# The LDPC family (v2 bursts, docs/design/link_v2.md section 6): indices 16-30, n = 1944, steps of ~1-1.5 dB
# from about -4 dB to 25 dB. ldpc-bpsk-1/4 sends each rate-1/2 codeword twice (chase-combined in the burst).
LDPC_MCS_TABLE: tuple[Mcs, ...] = tuple(
    Mcs(LDPC_FIRST_INDEX + i, f"ldpc-{mod}-{name_rate}", mod, rate, repeat=repeat, family="ldpc", code_n=LDPC_CODE_N)
    for i, (mod, name_rate, rate, repeat) in enumerate([
        ("bpsk", "1/4", "1/2", 2), ("bpsk", "1/2", "1/2", 1),
        ("qpsk", "1/2", "1/2", 1), ("qpsk", "2/3", "2/3", 1), ("qpsk", "3/4", "3/4", 1), ("qpsk", "5/6", "5/6", 1),
        ("16qam", "1/2", "1/2", 1), ("16qam", "2/3", "2/3", 1), ("16qam", "3/4", "3/4", 1),
        ("16qam", "5/6", "5/6", 1),
        ("64qam", "2/3", "2/3", 1), ("64qam", "3/4", "3/4", 1), ("64qam", "5/6", "5/6", 1),
        ("256qam", "3/4", "3/4", 1), ("256qam", "5/6", "5/6", 1),
    ])
)
FAMILIES = {"conv": MCS_TABLE, "ldpc": LDPC_MCS_TABLE}


def family_table(family: str) -> tuple[Mcs, ...]:
    """The MCSs of one family, most robust first."""
    if family not in FAMILIES:
        raise RadioError(f"unknown MCS family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def by_name(name: str) -> Mcs:
    """The MCS called `name` (either family); a clear error lists the known names."""
    for mcs in (*MCS_TABLE, *LDPC_MCS_TABLE):
        if mcs.name == name:
            return mcs
    known = ", ".join(m.name for m in (*MCS_TABLE, *LDPC_MCS_TABLE))
    raise RadioError(f"unknown MCS {name!r}; known: {known}")


def by_index(index: int, family: str = "conv") -> Mcs:
    """The MCS with `index` in `family` (conv: 0-7, ldpc: 16-30)."""
    table = family_table(family)
    first = table[0].index
    if not first <= index < first + len(table):
        raise RadioError(f"{family} MCS index {index} outside {first}..{first + len(table) - 1}")
    return table[index - first]


def ldpc_code(mcs: Mcs):
    """The LDPC code of an ldpc-family MCS (radio.ldpc.LdpcCode)."""
    if mcs.family != "ldpc":
        raise RadioError(f"MCS {mcs.name} is not an LDPC MCS")
    from radio import ldpc  # local: v1 users of this module need no numba compile
    return ldpc.code(mcs.code_n, mcs.rate)


@lru_cache(maxsize=4)
def per_curves(path: Path = PER_CURVES_FILE) -> dict:
    """The measured PER curves: {"snr_db": [...], "per": {mcs name: [...]}, ...}."""
    if not path.exists():
        raise RadioError(f"{path} is missing: run `airlora mcs-table` to measure the MCS table")
    return json.loads(path.read_text())


@lru_cache(maxsize=4)
def bler_curves(path: Path = BLER_CURVES_FILE) -> dict:
    """The measured LDPC codeword BLER curves: {"snr_db": [...], "bler": {mcs name: [...]}, "level", ...}."""
    if not path.exists():
        raise RadioError(f"{path} is missing: run `airlora mcs-table --family ldpc` to measure the LDPC table")
    return json.loads(path.read_text())


def required_snr_db(mcs: Mcs, target_per: float, curves: dict | None = None) -> float:
    """Lowest measured SNR at which `mcs` reaches `target_per` (interpolated in log PER)."""
    curves = curves or per_curves()
    snr = np.asarray(curves["snr_db"], float)
    per = np.clip(np.asarray(curves["per"][mcs.name], float), 1e-4, 1.0)
    ok = per <= target_per
    if not ok.any():
        return float("inf")
    first = int(np.argmax(ok))
    if first == 0:
        return float(snr[0])
    # interpolate between the last failing and the first passing point, in log10(PER)
    x0, x1 = snr[first - 1], snr[first]
    y0, y1, yt = np.log10(per[first - 1]), np.log10(per[first]), np.log10(target_per)
    return float(x0 + (x1 - x0) * (y0 - yt) / (y0 - y1)) if y0 != y1 else float(x1)


SELECTION_PERCENTILE = 25.0


def selection_snr_db(snr_db_packets: list[float] | np.ndarray) -> float:
    """The SNR link adaptation plans with: the 25th percentile of the latest per-packet measurements.

    Over AWGN it sits a few tenths of a dB under the mean; under fading it keeps the MCS decodable in
    the weaker packets instead of the average one (which makes most retransmissions).
    """
    values = np.asarray([v for v in snr_db_packets if np.isfinite(v)], float)
    return float(np.percentile(values, SELECTION_PERCENTILE)) if values.size else float("nan")


def select(snr_db: float, target_per: float = 0.1, margin_db: float = 0.25, curves: dict | None = None) -> Mcs:
    """The fastest MCS whose measured SNR requirement (plus margin) is met; the most robust otherwise."""
    best = MCS_TABLE[0]
    for mcs in MCS_TABLE:
        if required_snr_db(mcs, target_per, curves) + margin_db <= snr_db and \
                mcs.info_bits_per_symbol > best.info_bits_per_symbol:
            best = mcs
    return best
