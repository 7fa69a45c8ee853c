"""Uncoded BER of the full waveform receiver against theory (the issue's done-when), and the theory itself."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy.special import erfc

from radio.ber import bicm_capacity, bicm_limit_esn0_db, carrier_mcs, measure_ber, parse_range, theory_ber
from radio.errors import RadioError
from airlora.commands import ber as ber_command


def q(x: np.ndarray) -> np.ndarray:
    return 0.5 * erfc(np.asarray(x) / np.sqrt(2.0))


def gray_pam_ber(levels_per_dim: int, ebn0_db: float) -> float:
    """Exact BER of Gray-labelled square QAM from decision-region probabilities (independent of radio/)."""
    L = levels_per_dim
    m = 2 * int(np.log2(L))
    gamma = 10 ** (ebn0_db / 10)
    es = 2 * (L**2 - 1) / 3  # levels at odd integers, both dimensions
    sigma = np.sqrt(es / (m * gamma) / 2)  # per-dimension noise std for N0 = Es / (m Eb/N0)
    amp = 2 * np.arange(L) - (L - 1)
    gray = np.arange(L) ^ (np.arange(L) >> 1)
    edges = np.concatenate([[-np.inf], (amp[:-1] + amp[1:]) / 2, [np.inf]])
    errors = 0.0
    for i in range(L):
        p = q((edges[:-1] - amp[i]) / sigma) - q((edges[1:] - amp[i]) / sigma)  # P(decide j | sent i)
        hamming = np.array([bin(gray[i] ^ gray[j]).count("1") for j in range(L)])
        errors += np.sum(p * hamming)
    return errors / L / (m // 2)


@pytest.mark.parametrize("ebn0_db", [0.0, 4.0, 8.0, 10.0])
def test_theory_bpsk_qpsk_is_q_sqrt_2ebn0(ebn0_db: float) -> None:
    expected = q(np.sqrt(2 * 10 ** (ebn0_db / 10)))
    assert theory_ber("bpsk", ebn0_db) == pytest.approx(expected, rel=1e-12)
    assert theory_ber("qpsk", ebn0_db) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("name", "levels"), [("16qam", 4), ("64qam", 8), ("256qam", 16)])
@pytest.mark.parametrize("ebn0_db", [0.0, 6.0, 12.0, 18.0])
def test_theory_qam_matches_decision_regions(name: str, levels: int, ebn0_db: float) -> None:
    assert theory_ber(name, ebn0_db) == pytest.approx(gray_pam_ber(levels, ebn0_db), rel=1e-9)


def test_theory_16qam_approaches_textbook_approximation() -> None:
    gamma = 10 ** 1.4
    assert theory_ber("16qam", 14.0) == pytest.approx(3 / 8 * erfc(np.sqrt(0.4 * gamma)), rel=0.01)


def test_parse_range() -> None:
    assert parse_range("0:10:1") == [float(x) for x in range(11)]
    assert parse_range("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_range("3,5.5,7") == [3.0, 5.5, 7.0]
    assert parse_range("4") == [4.0]
    for bad in ("1:0:1", "0:5:0", "a,b", "", "1:2:3:4"):
        with pytest.raises(RadioError, match="start:stop:step"):
            parse_range(bad)


# (modulation, Eb/N0 dB, bits): points near BER 1e-2..1e-3, and near 1e-4 for QPSK and 64-QAM
POINTS = [
    ("bpsk", 5.0, 200_000), ("bpsk", 7.0, 400_000),
    ("qpsk", 5.0, 200_000), ("qpsk", 7.0, 400_000), ("qpsk", 8.4, 1_500_000),
    ("16qam", 9.0, 200_000), ("16qam", 11.0, 400_000),
    ("64qam", 13.0, 200_000), ("64qam", 15.0, 400_000), ("64qam", 16.5, 1_500_000),
    ("256qam", 16.0, 200_000), ("256qam", 20.0, 400_000),  # carried by 64qam-2/3 packets (measured gap 0.3 dB)
]


@pytest.mark.parametrize(("name", "ebn0_db", "n_bits"), POINTS)
def test_uncoded_ber_within_half_a_db_of_theory(name: str, ebn0_db: float, n_bits: int) -> None:
    """Unknown start offset (SimBackend), CFO = 1% of fs, RRC, pilots: theory(e+0.5) <= BER <= theory(e-0.5)."""
    point = measure_ber(name, ebn0_db, n_bits, cfo_frac=0.01, seed=int(10 * ebn0_db))
    assert point.packets_missed == 0
    assert point.bits >= n_bits
    low = point.bits * float(theory_ber(name, ebn0_db + 0.5))
    high = point.bits * float(theory_ber(name, ebn0_db - 0.5))
    # four standard deviations of a Poisson count as the statistical margin
    assert point.errors >= low - 4 * np.sqrt(low), f"{name} {ebn0_db} dB: {point}"
    assert point.errors <= high + 4 * np.sqrt(high), f"{name} {ebn0_db} dB: {point}"


def test_negative_cfo_and_other_seed_also_track() -> None:
    point = measure_ber("16qam", 9.0, 100_000, cfo_frac=-0.01, seed=77)
    low, high = (point.bits * float(theory_ber("16qam", 9.0 + s)) for s in (0.5, -0.5))
    assert low - 4 * np.sqrt(low) <= point.errors <= high + 4 * np.sqrt(high)


def test_256qam_rides_in_the_densest_mcs_and_unknown_names_are_refused() -> None:
    assert carrier_mcs("64qam").name == "64qam-2/3" and carrier_mcs("qpsk").name == "qpsk-1/2"
    assert carrier_mcs("256qam").name == "64qam-2/3"
    with pytest.raises(RadioError, match="known"):
        carrier_mcs("1024qam")


def test_bicm_capacity_known_limits() -> None:
    """The BI-AWGN limit of rate 1/2 is Eb/N0 = 0.187 dB; QPSK is two BPSKs; capacity grows to m bits and
    never exceeds Shannon's log2(1 + Es/N0)."""
    assert bicm_limit_esn0_db("bpsk", 0.5) + 10 * np.log10(2) == pytest.approx(0.187, abs=0.005)
    snr = np.arange(-10.0, 41.0, 2.0)
    np.testing.assert_allclose(bicm_capacity("qpsk", snr), 2 * bicm_capacity("bpsk", snr - 3.0103), atol=1e-4)
    for name, m in (("bpsk", 1), ("16qam", 4), ("64qam", 6), ("256qam", 8)):
        cap = bicm_capacity(name, snr)
        assert np.all(np.diff(cap) >= 0) and cap[-1] == pytest.approx(m, abs=1e-3) and cap[0] < 0.5
        assert np.all(cap <= np.log2(1 + 10 ** (snr / 10)) + 1e-6)
    # quadrature converged: twice the nodes moves the 256-QAM limit at 6 bit/symbol by < 0.01 dB
    fine = float(bicm_capacity("256qam", 19.25, nodes=192))
    assert fine == pytest.approx(float(bicm_capacity("256qam", 19.25)), abs=2e-4)
    with pytest.raises(RadioError, match="bits per symbol"):
        bicm_limit_esn0_db("16qam", 4.0)


def test_bicm_capacity_equals_monte_carlo_of_exact_llrs() -> None:
    """Sum over bits of 1 - E[log2(1 + exp(-(1 - 2b) L))] with exact 2-D LLRs, by simulation (256-QAM,
    18 dB, every point sent 100 times; the estimate's spread is ~0.01 bit)."""
    from scipy.special import logsumexp

    from radio.modulation import constellation

    c = constellation("256qam")
    rng = np.random.default_rng(5)
    n0 = 10 ** -1.8
    table = (np.arange(256)[:, None] >> np.arange(7, -1, -1)) & 1
    sent = np.repeat(np.arange(256), 100)
    y = c.points[sent] + np.sqrt(n0 / 2) * (rng.standard_normal(sent.size) + 1j * rng.standard_normal(sent.size))
    metric = -np.abs(y[:, None] - c.points[None, :]) ** 2 / n0
    total = 0.0
    for j in range(8):
        llr = logsumexp(metric[:, table[:, j] == 0], axis=1) - logsumexp(metric[:, table[:, j] == 1], axis=1)
        total += 1 - np.mean(np.logaddexp(0, -(1 - 2.0 * table[sent, j]) * llr)) / np.log(2)
    assert total == pytest.approx(float(bicm_capacity("256qam", 18.0)), abs=0.03)


def run_command(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ber_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_ber_command_json_and_plot(tmp_path, capsys) -> None:
    png = tmp_path / "ber.png"
    args = run_command(["--mod", "qpsk", "--ebn0-db", "2:4:2", "--bits", "20000", "--json", "--plot", str(png)])
    assert ber_command.run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ebn0_db"] for r in rows] == [2.0, 4.0]
    for r in rows:
        assert {"ebn0_db", "ber", "ber_theory", "bits", "errors"} <= set(r)
        assert r["bits"] >= 20000 and r["ber"] == pytest.approx(r["errors"] / r["bits"])
        assert r["ber_theory"] == pytest.approx(float(theory_ber("qpsk", r["ebn0_db"])))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_ber_command_table_says_missed_packets_are_not_counted(capsys) -> None:
    assert ber_command.run(run_command(["--mod", "bpsk", "--ebn0-db", "3", "--bits", "5000"])) == 0
    out = capsys.readouterr().out
    assert "not counted" in out and "theory" in out


def test_ber_command_measures_256qam(capsys) -> None:
    assert ber_command.run(run_command(["--mod", "256qam", "--ebn0-db", "18", "--bits", "50000"])) == 0
    out = capsys.readouterr().out
    assert "64qam-2/3 with 256qam payload symbols" in out
    row = [line.split() for line in out.splitlines() if line.strip().startswith("18.00")][0]
    ber, theory = float(row[1]), float(row[2])
    assert theory == pytest.approx(float(theory_ber("256qam", 18.0)), rel=1e-3)
    assert theory_ber("256qam", 18.5) < ber < theory_ber("256qam", 17.0)
