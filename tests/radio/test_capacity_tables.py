"""The shipped BICM capacity tables are what radio.ber.bicm_capacity computes, and reading them costs nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from radio import capacity_tables as ct
from radio.ber import bicm_capacity
from radio.interleave import effective_snr_db


@pytest.mark.parametrize("modulation", ct.MODULATIONS)
def test_the_shipped_table_is_the_computed_one(modulation: str) -> None:
    shipped = ct.capacity_table(modulation)
    assert shipped.size == ct.CAPACITY_GRID_DB.size and not shipped.flags.writeable
    np.testing.assert_allclose(shipped, ct.compute_table(modulation), atol=1e-9)
    assert np.all(np.diff(shipped) > 0)  # strictly increasing: effective_snr_db inverts it
    # spot values: BPSK 1 bit at high SNR; 256-QAM 8 bits at 50 dB and its capacity at 20 dB as computed
    assert shipped[-1] == pytest.approx({"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}[modulation], abs=1e-6)
    i = int(np.argmin(np.abs(ct.CAPACITY_GRID_DB - 10.0)))
    assert shipped[i] == pytest.approx(float(bicm_capacity(modulation, 10.0)), abs=1e-6)


def test_a_fresh_read_is_fast_and_matches_effective_snr_of_a_constant_channel() -> None:
    ct.capacity_table.cache_clear()
    ct._shipped.cache_clear()
    t0 = time.perf_counter()
    for m in ct.MODULATIONS:
        ct.capacity_table(m)
    assert time.perf_counter() - t0 < 0.5  # computed: 2-4 s for the five (the reason the file exists)
    snr = np.full((2, 50), 10 ** (13.0 / 10))
    np.testing.assert_allclose(effective_snr_db(snr, "256qam"), 13.0, atol=1e-6)


def test_another_grid_in_the_file_is_computed_instead(tmp_path, monkeypatch) -> None:
    path = tmp_path / "tables.json"
    ct.write_tables(path)
    text = path.read_text().replace('"points": 281', '"points": 280')
    path.write_text(text)
    monkeypatch.setattr(ct, "TABLES_PATH", path)
    ct._shipped.cache_clear()
    ct.capacity_table.cache_clear()
    try:
        assert ct._shipped() == {}
        np.testing.assert_allclose(ct.capacity_table("qpsk"), ct.compute_table("qpsk"))
    finally:
        ct._shipped.cache_clear()
        ct.capacity_table.cache_clear()
