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


@dataclass(frozen=True)
class Mcs:
    """One modulation and coding scheme."""

    index: int
    name: str
    modulation: str
    rate: str  # rate of the convolutional code (after puncturing)
    repeat: int = 1  # each coded block is sent this many times (LLRs are summed): rate / repeat overall

    @property
    def bits_per_symbol(self) -> int:
        return {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6}[self.modulation]

    @property
    def code_rate(self) -> float:
        num, den = self.rate.split("/")
        return int(num) / int(den) / self.repeat

    @property
    def info_bits_per_symbol(self) -> float:
        return self.bits_per_symbol * self.code_rate


MCS_TABLE: tuple[Mcs, ...] = (
    Mcs(0, "bpsk-1/4", "bpsk", "1/2", repeat=2),
    *(Mcs(i + 1, f"{mod}-{rate}", mod, rate) for i, (mod, rate) in enumerate([
        ("bpsk", "1/2"), ("qpsk", "1/2"), ("qpsk", "3/4"), ("16qam", "1/2"),
        ("16qam", "3/4"), ("64qam", "2/3"), ("64qam", "3/4"),
    ])),
)
HEADER_MCS = MCS_TABLE[1]  # headers always go out as BPSK rate 1/2


def by_name(name: str) -> Mcs:
    """The MCS called `name`; a clear error lists the known names."""
    for mcs in MCS_TABLE:
        if mcs.name == name:
            return mcs
    raise RadioError(f"unknown MCS {name!r}; known: {', '.join(m.name for m in MCS_TABLE)}")


def by_index(index: int) -> Mcs:
    if not 0 <= index < len(MCS_TABLE):
        raise RadioError(f"MCS index {index} outside 0..{len(MCS_TABLE) - 1}")
    return MCS_TABLE[index]


@lru_cache(maxsize=4)
def per_curves(path: Path = PER_CURVES_FILE) -> dict:
    """The measured PER curves: {"snr_db": [...], "per": {mcs name: [...]}, ...}."""
    if not path.exists():
        raise RadioError(f"{path} is missing: run `airlora mcs-table` to measure the MCS table")
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
