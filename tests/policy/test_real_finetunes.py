"""Real fine-tunes on a tiny model: collecting them for the surrogate (split over worker processes, resumed, never
mixed across regimes) and a sweep on the real environment with its fine-tunes run in parallel first."""

import json


def _common(tiny_bert, data_file, steps=2):
    return ["--set", f"model.name={tiny_bert}", "--set", "model.cache_dir=/tmp/airlora-test-cache",
            "--set", "data.task=bbc_news", "--set", "data.train_size=64", "--set", "data.val_size=0",
            "--set", "data.test_size=16", "--set", f"policy.real_steps={steps}",
            "--set", "policy.real_train_subset=32", "--set", "policy.real_eval_size=16",
            "--set", f"policy.surrogate_data={data_file}"]


def test_two_workers_collect_the_plan_once_and_a_rerun_resumes(tiny_bert, tmp_path, capsys):
    from airlora.cli import main

    data_file = tmp_path / "ft.json"
    args = ["train-policy", "--collect-finetunes", "4", "--workers", "2", "--json", *_common(tiny_bert, data_file)]
    assert main(args) == 0
    data = json.loads(data_file.read_text())
    methods = sorted(r["method"] for r in data["runs"])
    assert methods == ["adalora:2", "adalora:4", "adalora:8", "lora", "lora", "lora", "lora"]  # 4 designs + 3 AdaLoRA
    assert len({json.dumps(r["ranks"]) for r in data["runs"] if r["method"] == "lora"}) == 4
    assert {r["steps"] for r in data["runs"]} == {2} and data["eval_size"] == 16
    assert not list(tmp_path.glob("ft.json.part*"))  # parts merged and removed
    capsys.readouterr()
    assert main(["train-policy", "--collect-finetunes", "5", "--json", *_common(tiny_bert, data_file)]) == 0
    assert len(json.loads(data_file.read_text())["runs"]) == 8  # only the fifth design was new


def test_a_file_of_another_regime_is_refused_in_one_line(tiny_bert, tmp_path, capsys):
    from airlora.cli import main

    data_file = tmp_path / "ft.json"
    assert main(["train-policy", "--collect-finetunes", "1", "--json", *_common(tiny_bert, data_file)]) == 0
    before = data_file.read_text()
    capsys.readouterr()
    assert main(["train-policy", "--collect-finetunes", "2", *_common(tiny_bert, data_file, steps=3)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another regime" in err[0] and "steps 2 there, 3 now" in err[0]
    assert data_file.read_text() == before  # nothing mixed in
    assert main(["train-policy", "--collect-finetunes", "0", *_common(tiny_bert, data_file)]) == 2


def test_real_env_sweep_plans_its_finetunes_and_runs_them_on_workers(tiny_bert, tmp_path, capsys):
    from airlora.cli import main
    from policy.env import make_env
    from policy.sweep import build_policies, run_sweep
    from testbed.config import load

    common = _common(tiny_bert, tmp_path / "unused.json")
    overrides = [common[i + 1] for i in range(0, len(common), 2)] + [f"policy.out_dir={tmp_path / 'runs'}"]
    cfg = load(overrides=overrides)
    env = make_env(cfg, "real")
    policies = build_policies(["fixed:2", "adalora:2"], env, cfg, 2)
    planned = env.plan(lambda: run_sweep(env, policies, [0.0, 10.0], 2, 0.5))
    n = env.problem.n
    assert planned == {((2,) * n, 0), ((2,) * n, 1), ("adalora", 2, 0), ("adalora", 2, 1)}  # one per (vector, data)
    assert env.cache == {} and env.planning is None  # planning ran nothing

    assert main(["sweep", "--env", "real", "--policies", "fixed:2,adalora:2", "--snr-db", "0,10", "--seeds", "2",
                 "--workers", "2", "--json", *common, "--set", f"policy.out_dir={tmp_path / 'runs'}"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert len(cells) == 2 * 2 * 2 and all(0.0 <= c["accuracy"] <= 1.0 and c["reward"] < 0 for c in cells)
    fixed = {(c["snr_db"], c["seed"]): c for c in cells if c["policy"] == "fixed:2"}
    assert fixed[(0.0, 0)]["accuracy"] == fixed[(10.0, 0)]["accuracy"]  # one fine-tune serves both SNRs
    assert fixed[(0.0, 0)]["airtime_s"] > fixed[(10.0, 0)]["airtime_s"]  # the channel sets the airtime
    assert all(c["rank_sum"] > 0 for c in cells if c["policy"] == "adalora:2")
