"""The decision problem: real-airtime cost equals delivery_airtime_s, reward, deadline, state vector; surrogate."""

import numpy as np
import pytest

from policy.cost import lora_payload_bytes
from policy.env import make_env
from policy.problem import problem_from_config
from policy.state import PolicyState
from policy.surrogate import SurrogateEnv, cross_validate
from radio.airtime import delivery_airtime_s, shannon_airtime_s


def test_cost_matches_delivery_airtime(cfg):
    cfg.radio.frame = "v1"  # the K=7 packets' cost model (v2's: the next test)
    env = make_env(cfg, "surrogate")
    p = env.problem
    rng = np.random.default_rng(0)
    for _ in range(30):
        ranks = [int(r) for r in rng.integers(0, p.r_max + 1, p.n)]
        snr = float(rng.uniform(-8, 25))
        size = p.payload_bytes(ranks)
        assert size == lora_payload_bytes(dict(zip(p.modules, ranks)), p.shapes, "nf4", 64, p.overhead_bytes)
        assert p.airtime_s(size, snr) == pytest.approx(delivery_airtime_s(p.link, size, snr), rel=1e-12)
        out = env.outcome(ranks, snr)
        assert out.airtime_s == pytest.approx(delivery_airtime_s(p.link, size, snr), rel=1e-12)
        loss, _ = env.quality(ranks, 0)
        penalty = p.deadline_penalty if out.airtime_s > p.deadline_s else 0.0
        assert out.reward == pytest.approx(-loss - p.cost_weight * out.airtime_s - penalty)
    assert p.cost_weight == cfg.policy.cost_weight == 0.005 and p.deadline_s == 8.0  # the calibrated default


def test_v2_frame_cost_is_the_v2_delivery_model(cfg):
    from radio.delivery_model import delivery_airtime_s_v2

    cfg.radio.frame = "v1"
    v1 = make_env(cfg, "surrogate").problem
    cfg.radio.frame = "v2"
    p = make_env(cfg, "surrogate").problem
    size = p.payload_bytes([4] * p.n)
    for snr in (0.0, 10.0, 20.0):
        assert p.airtime_s(size, snr) == pytest.approx(delivery_airtime_s_v2(p.link, size, snr), rel=1e-12)
    # LDPC bursts near Shannon cost less air than K=7 packets from 5 dB up
    assert p.airtime_s(size, 10.0) < v1.airtime_s(size, 10.0) and p.airtime_s(size, 20.0) < v1.airtime_s(size, 20.0)
    assert p.airtime_s(size, 20.0) < p.airtime_s(size, 10.0) < p.airtime_s(size, 0.0)


def test_shannon_cost_option(cfg):
    cfg.policy.cost = "shannon"
    env = make_env(cfg, "surrogate")
    p = env.problem
    size = p.payload_bytes([4] * p.n)
    assert env.outcome([4] * p.n, 10.0).airtime_s == pytest.approx(shannon_airtime_s(p.link, size, 10.0))
    # the ideal channel is cheaper than the real link at the same SNR
    cfg.policy.cost = "real"
    assert make_env(cfg, "surrogate").outcome([4] * p.n, 10.0).airtime_s > env.outcome([4] * p.n, 10.0).airtime_s


def test_deadline_penalty_and_rank_mapping(cfg):
    env = make_env(cfg, "surrogate")
    p = env.problem
    low = env.outcome([p.r_max] * p.n, -5.0)
    assert low.missed_deadline and low.reward < -p.deadline_penalty
    assert not env.outcome([1] * p.n, 15.0).missed_deadline
    assert p.to_ranks(p.to_action([0, 1, 7, 16] + [3] * (p.n - 4))) == [0, 1, 7, 16] + [3] * (p.n - 4)
    assert p.to_ranks(np.full(p.n, 5.0)) == [p.r_max] * p.n
    empty = np.full(p.n, -1.0)
    empty[7] = -0.99
    assert p.to_ranks(empty) == [0] * 7 + [1] + [0] * (p.n - 8)


def test_state_vector_from_policy_state(cfg):
    env = make_env(cfg, "surrogate")
    p = env.problem
    state = PolicyState(snr_db=7.5, bandwidth_hz=312500.0, entropy=0.8, oov_rate=0.05, modules=p.modules,
                        shapes=p.shapes, ranks={p.modules[0]: 8}, r_max=p.r_max)
    v = p.observe_state(state)
    assert v.shape == (4 + p.n,)
    assert v[:4] == pytest.approx([(7.5 + 5) / 25, 0.3125, 0.8, 0.05])
    assert v[4] == pytest.approx(0.5) and v[5:].sum() == 0


def test_episode_has_fifteen_steps_and_drifting_snr(cfg):
    env = make_env(cfg, "surrogate", seed=3)
    env.reset()
    snrs, done, steps = [], False, 0
    while not done:
        _, _, done, out = env.step([2] * env.problem.n)
        snrs.append(out.snr_db)
        steps += 1
    assert steps == 15 and len(set(snrs)) > 1


def test_surrogate_fits_training_data_and_reports_heldout_error(cfg, synth_file):
    import json

    data = json.loads(synth_file.read_text())
    problem = problem_from_config(cfg, data["modules"], data["shapes"])
    env = SurrogateEnv(problem, data, holdout=(4, 5))
    report = env.report()
    assert report["heldout"] == 8 and "heldout_loss_mae" in report
    assert report["heldout_loss_mae"] < 0.3 * report["loss_std"]
    assert report["heldout_loss_mae"] < 0.3 * report["heldout_loss_mae_of_mean"]
    cv = cross_validate(problem, data, folds=5)
    assert cv["folds"] == 5 and cv["heldout_loss_mae"] < 0.4 * cv["heldout_loss_mae_of_mean"]
    assert report["loss_cv_mae"] < 0.4 * report["loss_std"]  # the features see attention vs FFN, not each kind
    fitted = [r for i, r in enumerate(data["runs"]) if i % 5 != 4]
    pred, _ = env.predict([r["ranks"] for r in fitted[:10]], 0.9, 0.1)
    assert np.abs(pred - [r["loss"] for r in fitted[:10]]).mean() < 0.02
    # more rank on the projections that matter lowers the predicted loss
    lo, _ = env.quality([1] * problem.n, 0)
    hi, _ = env.quality([16] * problem.n, 0)
    assert hi < lo


def test_shipped_surrogate_data_fits(cfg):
    from testbed.config import load

    real = load()
    env = make_env(real, "surrogate")  # the repository ships policy/data/minilm_rt_finetunes.json
    report = env.report()
    assert report["runs"] >= 30 and np.isfinite(report["loss_cv_mae"])
    assert report["loss_cv_mae"] < 0.1
    p, d = real.policy, env.data_file  # the shipped data measures the configured real-environment regime
    assert (d["steps"], d["train_subset"], d["eval_size"]) == (p.real_steps, p.real_train_subset, p.real_eval_size)
    assert report["runs"] > 80
    cv = cross_validate(env.problem, d, folds=5)  # held out, at most 60% of the always-the-mean predictor's error
    assert cv["heldout_loss_mae"] <= 0.6 * cv["heldout_loss_mae_of_mean"]
    assert cv["heldout_accuracy_mae"] <= 0.6 * cv["heldout_accuracy_mae_of_mean"]


def test_surrogate_never_predicts_beyond_the_measured_range(cfg):
    env = make_env(cfg, "surrogate")
    runs = env.data_file["runs"]
    lo, hi = min(r["loss"] for r in runs), max(r["loss"] for r in runs)
    rng = np.random.default_rng(0)
    extreme = [[env.problem.r_max] * env.problem.n, [1] + [0] * (env.problem.n - 1)]
    extreme += [list(rng.integers(0, env.problem.r_max + 1, env.problem.n)) for _ in range(50)]
    loss, acc = env.predict(extreme, 0.9, 0.1)
    assert loss.min() >= lo - 1e-12 and loss.max() <= hi + 1e-12
    amin, amax = min(r["accuracy"] for r in runs), max(r["accuracy"] for r in runs)
    assert acc.min() >= amin - 1e-12 and acc.max() <= amax + 1e-12
