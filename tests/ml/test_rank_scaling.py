"""The rank-scaling benchmark's statistics and checks (on given numbers), and one tiny real run through the CLI."""

import json
import math

import pytest

from ml.rank_scaling import ScalingMode, format_table, summarize
from testbed.stats import mean_ci, t95


def test_mean_ci_uses_the_t_quantile():
    stats = mean_ci([0.70, 0.72, 0.74])
    assert stats["mean"] == pytest.approx(0.72) and stats["std"] == pytest.approx(0.02)
    assert stats["ci95"] == pytest.approx(4.303 * 0.02 / math.sqrt(3))
    assert math.isnan(mean_ci([0.7])["ci95"])
    assert t95(12) == 2.228 and t95(100) == 1.96  # between tabulated dofs: the next smaller one (wider)


def test_mode_spec_parses_alpha_and_lr():
    assert ScalingMode.parse("rslora:5.66@1e-3", 2e-3) == ScalingMode("rslora", 5.66, 1e-3)
    assert ScalingMode.parse("fixed:2", 2e-3) == ScalingMode("fixed", 2.0, 2e-3)
    assert ScalingMode.parse("fixed:2", 2e-3).label == "fixed:2@0.002"


def _runs(mode, accs_by_rank):
    return [{"method": "lora", "mode": mode, "rank": r, "seed": s, "accuracy": a}
            for r, accs in accs_by_rank.items() for s, a in enumerate(accs)]


def test_checks_flag_a_drop_and_a_weak_largest_rank():
    runs = _runs("good", {1: [.70, .71, .72], 4: [.74, .75, .76], 16: [.745, .755, .765]})
    runs += _runs("bad", {1: [.75, .76, .77], 4: [.75, .76, .77], 16: [.68, .69, .70]})
    runs += [{"method": "adalora", "mode": "adalora:4", "rank": 4, "seed": s, "accuracy": a}
             for s, a in enumerate([.735, .745, .755])]
    report = summarize(runs, [1, 4, 16], ["good", "bad"], 4, max_drop=0.005, adalora_margin=0.01)
    assert report["checks"]["good"] == {"max_drop": pytest.approx(-0.005), "never_drops": True,
                                        "largest_at_least_second": True}
    assert report["checks"]["bad"]["max_drop"] == pytest.approx(0.07)
    assert not report["checks"]["bad"]["never_drops"] and not report["checks"]["bad"]["largest_at_least_second"]
    assert report["adalora"]["vs"]["good"] == {"gap": pytest.approx(-0.005), "within_margin": True}
    assert report["adalora"]["vs"]["bad"]["within_margin"] is False
    text = "\n".join(format_table(report))
    assert "bad: largest drop rank to rank +7.0 points (FAILS <= 0.5)" in text
    assert "vs good rank 4: -0.5 points (ok)" in text


def test_bench_finetune_runs_real_finetunes_on_a_tiny_model(tiny_bert, tmp_path):
    from airlora.cli import main

    out = tmp_path / "bench.json"
    rc = main(["bench", "finetune", "--ranks", "1,2", "--modes", "fixed:2,rslora:2.83", "--seeds", "2",
               "--adalora", "2", "--out", str(out), "--json", "--set", f"model.name={tiny_bert}",
               "--set", "model.cache_dir=/tmp/airlora-test-cache", "--set", "finetune.steps=4",
               "--set", "data.task=bbc_news", "--set", "data.train_size=64", "--set", "data.val_size=0",
               "--set", "data.test_size=20"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert len(report["runs"]) == 2 * 2 * 2 + 2
    assert set(report["table"]) == {"fixed:2@0.001", "rslora:2.83@0.001"}  # lr: finetune.lr (1e-3)
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 for r in report["runs"])
    assert report["config"]["steps"] == 4 and report["adalora"]["n"] == 2


@pytest.mark.parametrize("args, message", [
    (["--modes", "fixed:nan"], "alpha must be in (0, 1e4] and lr in (0, 1)"),
    (["--modes", "rslora:2@inf"], "alpha must be in (0, 1e4] and lr in (0, 1)"),
    (["--modes", "sqrt:2"], "unknown alpha mode 'sqrt'"),
    (["--ranks", "1,99999"], "ranks must be integers in 1..4096"),
    (["--ranks", "one"], "expected e.g. --ranks 1,2,4"),
    (["--seeds", "0"], "--seeds must be in 1..100"),
])
def test_bench_finetune_refuses_bad_arguments_in_one_line(args, message, capsys):
    from airlora.cli import main

    assert main(["bench", "finetune", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
