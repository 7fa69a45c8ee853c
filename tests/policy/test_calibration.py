"""Reward calibration: the optimum per SNR from given fine-tune figures, the trade-off verdict, the grid search,
and `airlora calibrate` end to end on a tiny model."""

import json

import pytest

from policy.calibration import has_tradeoff, optimum_per_snr, search, spread_points
from policy.problem import Problem
from radio.link import LinkSettings


def _measured(acc_by_rank):
    return {r: {"loss": {"mean": 1.2 - a}, "accuracy": {"mean": a, "std": 0.004 * r ** 0.5}}
            for r, a in acc_by_rank.items()}


@pytest.fixture
def problem():
    modules = [f"m{i}" for i in range(12)]
    shapes = {m: (384, 384) for m in modules}
    return Problem(modules, shapes, LinkSettings(1.0e6), r_max=16, cost_weight=0.1, deadline_s=20.0)


MEASURED = _measured({0: 0.59, 1: 0.70, 2: 0.73, 4: 0.75, 8: 0.76, 16: 0.77})


def test_optimum_moves_with_the_channel_when_airtime_costs_something(problem):
    free = optimum_per_snr(MEASURED, problem.__class__(**{**problem.__dict__, "cost_weight": 0.0}), [-5.0, 15.0])
    assert [r["best_rank"] for r in free] == [16, 16]  # airtime free: always the most accurate adapter
    costly = optimum_per_snr(MEASURED, problem, [-5.0, 15.0])  # 0.1 per second of airtime
    assert [r["best_rank"] for r in costly] == [0, 4]  # a bad channel makes bytes dear
    cells = costly[0]["cells"]
    assert cells[0]["payload_bytes"] == 0 and cells[0]["airtime_s"] == 0.0  # rank 0 sends nothing
    assert all(a["airtime_s"] < b["airtime_s"] for a, b in zip(cells[1:], cells[2:]))


def test_verdict_needs_distinct_optima_and_a_gain_at_the_top():
    rows = [{"snr_db": s, "best_rank": r, "best_accuracy": a}
            for s, r, a in [(-5, 0, 0.59), (5, 2, 0.73), (15, 8, 0.76)]]
    assert has_tradeoff(rows, 0.59) == {"distinct_best_ranks": [0, 2, 8], "gain_at_top_snr": pytest.approx(0.17),
                                        "holds": True}
    assert not has_tradeoff(rows[:2], 0.59)["holds"]  # two optima only
    assert not has_tradeoff(rows, 0.72)["holds"]  # 4 points over the plateau: not enough


def test_search_puts_weights_with_a_tradeoff_first(problem):
    grid = search(MEASURED, problem, [-5.0, 0.0, 5.0, 10.0, 15.0], weights=(0.0, 0.01, 0.5, 5.0), deadlines_s=(20.0,))
    assert len(grid) == 4 and grid[0]["holds"] and grid[0]["cost_weight"] == 0.01
    assert grid[0]["best_ranks"] == [4, 4, 8, 16, 16]
    assert not next(g for g in grid if g["cost_weight"] == 0.0)["holds"]  # free airtime: one optimum everywhere
    assert spread_points(MEASURED) == pytest.approx(1.6)


def test_calibrate_command_on_a_tiny_model(tiny_bert, tmp_path, capsys):
    from airlora.cli import main

    out = tmp_path / "cal.json"
    common = ["--set", f"model.name={tiny_bert}", "--set", "model.cache_dir=/tmp/airlora-test-cache",
              "--set", "data.task=bbc_news", "--set", "data.train_size=64", "--set", "data.val_size=0",
              "--set", "data.test_size=24", "--set", "policy.real_steps=3", "--set", "policy.real_train_subset=32",
              "--set", "policy.real_eval_size=24", "--snr-db=-5,15"]
    assert main(["calibrate", "--ranks", "0,2,4", "--seeds", "2", "--out", str(out), "--json", *common]) == 0
    report = json.loads(out.read_text())
    assert set(report["measured"]) == {"0", "2", "4"} and len(report["measured"]["2"]["runs"]) == 2
    assert len(report["measured"]["0"]["runs"]) == 1  # the untrained model does not depend on the seed
    assert [r["snr_db"] for r in report["configured"]["per_snr"]] == [-5.0, 15.0]
    capsys.readouterr()
    assert main(["calibrate", "--measured", str(out), *common]) == 0  # no training: reuses the fine-tunes
    printed = capsys.readouterr().out
    assert "best uniform rank per SNR -5 dB ->" in printed and "trade-off" in printed
    assert main(["calibrate", "--ranks", "0,x", *common]) == 2
    with pytest.raises(SystemExit) as stop:  # argparse refuses it, in one line
        main(["calibrate", "--snr-db=nan", *common[:-1]])
    assert stop.value.code == 2
