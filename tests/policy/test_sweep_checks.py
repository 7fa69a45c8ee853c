"""The sweep's checks on given rows: best baseline, airtime vs AdaLoRA, bytes on air at equal accuracy; CIs."""

import pytest

from policy.sweep import checks, table


def _row(policy, snr, accuracy, payload, reward, airtime=1.0):
    return {"policy": policy, "snr_db": snr, "accuracy": accuracy, "payload_bytes": payload, "reward": reward,
            "airtime_s": airtime}


def test_bytes_on_air_at_equal_accuracy_against_fp32_rank8():
    rows = [_row("airllm", 0, 0.760, 40_000, -0.9), _row("fixed:8", 0, 0.764, 174_000, -1.2),
            _row("airllm", 10, 0.700, 20_000, -0.8), _row("fixed:8", 10, 0.764, 174_000, -1.0)]
    out = checks(rows, "airllm", fp32_rank8_bytes=1_340_000)
    at0, at10 = out["per_snr"]
    assert at0["equal_accuracy"] and at0["bytes_saving_vs_fp32_rank8"] == pytest.approx(33.5)
    assert not at10["equal_accuracy"]  # 6.4 points below fixed:8: no claim of equal accuracy
    assert at0["beats_best"] and at0["best_baseline"] == "fixed:8" and out["beats_best_everywhere"]
    assert "bytes_saving_vs_fp32_rank8" not in checks(rows, "airllm")["per_snr"][0]  # no reference: no figure


def test_table_carries_ci_and_the_measured_snr():
    cells = [{"policy": "fixed:8", "snr_db": 5.0, "snr_db_measured": m, "seed": s, "accuracy": a,
              "payload_bytes": 100, "airtime_s": 1.0, "reward": -a, "rank_sum": 8}
             for s, (m, a) in enumerate([(4.8, 0.70), (5.1, 0.72), (5.3, 0.74)])]
    row = table(cells)[0]
    assert row["snr_db_measured"] == pytest.approx(5.0667, abs=1e-4)
    assert row["accuracy_ci95"] == pytest.approx(4.303 * 0.02 / 3 ** 0.5)
    assert row["payload_bytes_ci95"] == 0.0
