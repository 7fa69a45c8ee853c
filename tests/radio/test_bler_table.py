"""LDPC BLER table: the symbol-level link, the two-pass measurement with a pluggable link, the gap to the
Shannon limit, the shipped radio/mcs_bler_curves.json and `airlora mcs-table --family ldpc` (smoke)."""

import json

import numpy as np
import pytest

from airlora.cli import main
from radio import bler_table
from radio.bler_table import MeasurePlan, crossing_db, gap_table, measure_mcs, shannon_limit_db, symbol_link
from radio.mcs import BLER_CURVES_FILE, LDPC_MCS_TABLE, by_name


def test_symbol_link_far_from_the_waterfall_and_the_repeat_gain() -> None:
    rng = np.random.default_rng(5)
    qpsk = by_name("ldpc-qpsk-1/2")  # BICM limit 0.19 dB, BLER 1e-2 near 1.8 dB
    assert symbol_link(qpsk, -1.0, 100, rng).all()
    assert not symbol_link(qpsk, 4.0, 100, rng).any()
    # at -3 dB the rate-1/2 BPSK codeword (limit -2.82 dB) never decodes; sent twice with summed LLRs it does
    assert symbol_link(by_name("ldpc-bpsk-1/2"), -3.0, 100, rng).all()
    assert symbol_link(by_name("ldpc-bpsk-1/4"), -3.0, 100, rng).mean() <= 0.02


def test_shannon_limits_are_the_bicm_limits_at_the_mcs_rate() -> None:
    assert shannon_limit_db(by_name("ldpc-16qam-1/2")) == pytest.approx(5.28, abs=0.01)
    assert shannon_limit_db(by_name("ldpc-256qam-5/6")) == pytest.approx(21.35, abs=0.02)
    assert shannon_limit_db(by_name("ldpc-bpsk-1/4")) == pytest.approx(-6.81, abs=0.02)  # BPSK at 0.25 bit/symbol


def test_crossing_interpolates_in_log_bler() -> None:
    assert crossing_db([0, 1, 2], [1.0, 0.1, 0.001], 0.01) == pytest.approx(1.5)
    assert crossing_db([0, 1], [0.5, 0.2], 0.01) == float("inf")
    assert crossing_db([3, 4], [0.0, 0.0], 0.01) == 3.0


def fake_link(centre_db: float, width_db: float = 0.4):
    """A pluggable link whose BLER is logistic in SNR: what measure_mcs sees from any receiver."""
    def link(mcs, snr_db, count, rng):
        return rng.random(count) < 1.0 / (1.0 + np.exp((snr_db - centre_db) / width_db))
    return link


def test_two_pass_measurement_finds_and_resolves_the_waterfall() -> None:
    grid = np.arange(-6.0, 30.01, 0.25)
    plan = MeasurePlan(max_codewords=4000, target_errors=100)
    bler, counts = measure_mcs(by_name("ldpc-qpsk-1/2"), grid, plan, seed=3, link=fake_link(10.0, 0.4))
    bler, counts = np.array(bler), np.array(counts)
    assert len(bler) == len(grid) and np.all((0 <= bler) & (bler <= 1))
    truth_db = 10.0 + 0.4 * np.log(1 / 0.01 - 1)  # logistic crossing of 1e-2: 11.84 dB
    assert crossing_db(grid, bler) == pytest.approx(truth_db, abs=0.15)
    fine = grid[counts > plan.coarse_codewords]
    assert fine.min() >= 7.5 and fine.max() <= 15.0 and np.all(np.diff(fine) == 0.25)  # every point there
    assert counts[grid == 12.5][0] == 4000  # down the waterfall: up to max_codewords
    assert np.all(bler[grid < 8] > 0.97) and np.all(bler[grid > 14.5] == 0) and np.all(counts[grid > 20] == 0)
    again, _ = measure_mcs(by_name("ldpc-qpsk-1/2"), grid, plan, seed=3, link=fake_link(10.0, 0.4))
    assert again == bler.tolist()  # seeded per point


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads(BLER_CURVES_FILE.read_text())


def test_shipped_curves_are_well_formed(shipped: dict) -> None:
    assert shipped["level"] == "symbols" and shipped["code_n"] == 1944 and shipped["codewords"] >= 5000
    snr = np.array(shipped["snr_db"])
    assert snr[0] <= -6 and snr[-1] >= 30 and np.all(np.diff(snr) > 0)
    assert set(shipped["bler"]) == {m.name for m in LDPC_MCS_TABLE}
    crossings = []
    for mcs in LDPC_MCS_TABLE:
        bler = np.array(shipped["bler"][mcs.name])
        assert bler.shape == snr.shape and np.all((0 <= bler) & (bler <= 1))
        assert bler[0] == 1.0 and bler[-1] == 0.0
        assert np.all(np.diff(bler) <= 0.03), mcs.name  # decreasing up to counting noise
        crossings.append(crossing_db(snr, bler))
    assert crossings == sorted(crossings) and len(set(crossings)) == len(crossings)  # waterfalls in rate order


def test_shipped_gaps_to_the_shannon_limit(shipped: dict) -> None:
    gaps = gap_table(shipped)
    assert gaps["ldpc-qpsk-1/2"][2] <= 2.5 and gaps["ldpc-64qam-5/6"][2] <= 2.5
    assert all(0.5 < g < 3.0 for _, _, g in gaps.values())  # no code beats capacity


def test_mcs_table_command_smoke(tmp_path, capsys) -> None:
    out, png = tmp_path / "bler.json", tmp_path / "bler.png"
    assert main(["mcs-table", "--family", "ldpc", "--snr-db", "0,12", "--codewords", "20",
                 "--out", str(out), "--plot", str(png)]) == 0
    curves = json.loads(out.read_text())
    assert curves["snr_db"] == [0.0, 12.0] and curves["codewords"] == 20 and curves["level"] == "symbols"
    assert curves["bler"]["ldpc-bpsk-1/2"] == [0.0, 0.0] and curves["bler"]["ldpc-256qam-5/6"] == [1.0, 1.0]
    printed = capsys.readouterr().out
    assert "gap" in printed and "ldpc-64qam-5/6" in printed and png.stat().st_size > 10_000
    assert bler_table.BLER_CURVES_FILE == BLER_CURVES_FILE  # the shipped file was not the target
