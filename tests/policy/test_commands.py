"""`airlora train-policy` and `airlora sweep` end to end on the synthetic surrogate (tiny budgets)."""

import json

import pytest

from airlora.cli import main


def test_train_policy_then_sweep(cfg, synth_file, tmp_path, capsys):
    common = ["--set", f"policy.surrogate_data={synth_file}", "--set", f"policy.out_dir={tmp_path / 'runs'}",
              "--set", f"policy.checkpoint={tmp_path / 'ckpt' / 'airllm.pt'}", "--set", "policy.hidden=32"]
    assert main(["train-policy", *common, "--episodes", "4", "--num-envs", "2", "--seeds", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["learners"]) == {"airllm", "ppo"}
    for name in ("airllm.pt", "ppo.pt", "airllm-seed1.pt", "ppo-seed1.pt"):
        assert (tmp_path / "ckpt" / name).exists()
    assert [e["seed"] for e in summary["learners"]["airllm"]["per_seed"]] == [0, 1]
    finals = [e["final_reward"] for e in summary["learners"]["ppo"]["per_seed"]]
    assert summary["learners"]["ppo"]["final_reward"]["mean"] == pytest.approx(sum(finals) / 2)
    assert len(summary["vs_ppo"]["per_seed"]) == 2
    # the same pairs trained side by side in two worker processes: the same learners, seed for seed
    par = [*common[:4], "--set", f"policy.checkpoint={tmp_path / 'par' / 'airllm.pt'}", "--set", "policy.hidden=32"]
    assert main(["train-policy", *par, "--episodes", "4", "--num-envs", "2", "--seeds", "2", "--workers", "2",
                 "--json"]) == 0
    side_by_side = json.loads(capsys.readouterr().out)
    for algo in ("airllm", "ppo"):
        # same seeds, same learners; float noise between processes (seen once: 5e-4 of 3.7) is not a difference
        assert [e["final_reward"] for e in side_by_side["learners"][algo]["per_seed"]] == \
            pytest.approx([e["final_reward"] for e in summary["learners"][algo]["per_seed"]], rel=1e-3)
    assert (tmp_path / "par" / "ppo-seed1.pt").exists()
    folder = summary["folder"]
    for name in ("learning_curve.png", "curve_airllm_seed0.csv", "curve_ppo_seed1.csv", "summary.json"):
        assert (tmp_path / "runs" / folder.rsplit("/", 1)[-1] / name).exists()

    assert main(["sweep", *common, "--policies", "fixed:8,heuristic,adalora,ppo,airllm", "--snr-db", "-5,10",
                 "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["cells"]) == 5 * 2 * 2
    cell = out["cells"][0]
    assert {"policy", "snr_db", "seed", "accuracy", "payload_bytes", "airtime_s", "reward"} <= set(cell)
    assert {c["policy"] for c in out["cells"]} == {"fixed:8", "heuristic", "adalora", "ppo", "airllm"}
    assert len(out["checks"]["per_snr"]) == 2
    # sweep seed k runs the k-th training seed's checkpoint: two differently trained policies, two rank choices
    per_seed = {c["seed"]: c["ranks"] for c in out["cells"] if c["policy"] == "airllm" and c["snr_db"] == 10.0}
    assert per_seed[0] != per_seed[1]
    for name in ("cells.csv", "table.csv", "accuracy_vs_airtime.png", "reward_per_snr.png", "rank_heatmap.png"):
        assert (tmp_path / "runs" / out["folder"].rsplit("/", 1)[-1] / name).exists()


def test_sweep_refuses_bad_arguments(cfg, synth_file, capsys):
    assert main(["sweep", "--set", f"policy.surrogate_data={synth_file}", "--policies", "nonsense"]) == 2
    with pytest.raises(SystemExit):
        main(["sweep", "--snr-db", "a,b"])
