"""BICM capacity tables on a fixed Es/N0 grid, shipped as data (radio/bicm_capacity_tables.json).

Every interleaved codeword's SNR and every interleaved MCS pick maps per-symbol SNRs through these tables
(radio/interleave.py `effective_snr_db`). Computed, they cost 0.3-1.3 s per modulation (256-QAM: Gauss-Hermite
quadrature over 16 levels at 281 points), paid by every fresh host and edge process on its first burst at that
modulation: a paced 100 kB delivery at 25 dB took 1.2 s for 0.54 s of air. Read from the file they cost nothing.
`python -m radio.capacity_tables` rewrites the file from radio.ber.bicm_capacity; tests/radio/test_capacity_tables.py
checks the file against a fresh computation.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

CAPACITY_GRID_DB = np.arange(-20.0, 50.001, 0.25)  # Es/N0 grid of the mutual-information tables
MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam", "256qam")
TABLES_PATH = Path(__file__).with_name("bicm_capacity_tables.json")


def compute_table(modulation: str) -> np.ndarray:
    """BICM capacity (bits per symbol) on CAPACITY_GRID_DB, made strictly increasing where it saturates."""
    from radio.ber import bicm_capacity

    cap = np.maximum.accumulate(np.asarray(bicm_capacity(modulation, CAPACITY_GRID_DB), float))
    return cap + 1e-9 * np.arange(cap.size)


@lru_cache(maxsize=None)
def _shipped() -> dict[str, list[float]]:
    data = json.loads(TABLES_PATH.read_text())
    grid = data.get("grid_db", {})
    if (grid.get("start"), grid.get("stop"), grid.get("points")) != (
            float(CAPACITY_GRID_DB[0]), float(CAPACITY_GRID_DB[-1]), CAPACITY_GRID_DB.size):
        return {}  # another grid: compute instead
    return data["tables"]


@lru_cache(maxsize=None)
def capacity_table(modulation: str) -> np.ndarray:
    """(CAPACITY_GRID_DB.size,) read-only BICM capacity of a modulation: from the shipped file, computed if absent."""
    row = _shipped().get(modulation) if TABLES_PATH.exists() else None
    out = np.asarray(row, float) if row is not None and len(row) == CAPACITY_GRID_DB.size else compute_table(modulation)
    out.flags.writeable = False
    return out


def write_tables(path: Path = TABLES_PATH) -> None:
    """Compute every modulation's table and write the file."""
    tables = {m: [float(v) for v in compute_table(m)] for m in MODULATIONS}
    grid = {"start": float(CAPACITY_GRID_DB[0]), "stop": float(CAPACITY_GRID_DB[-1]), "points": CAPACITY_GRID_DB.size}
    path.write_text(json.dumps({"about": "BICM capacity, bits per symbol, of Gray-mapped constellations over AWGN "
                                         "(radio.ber.bicm_capacity, 96-node Gauss-Hermite); python -m "
                                         "radio.capacity_tables rewrites it", "grid_db": grid, "tables": tables}))


if __name__ == "__main__":
    write_tables(Path(sys.argv[1]) if len(sys.argv) > 1 else TABLES_PATH)
    print(f"wrote {TABLES_PATH if len(sys.argv) == 1 else sys.argv[1]}")
