"""A short real training run of the hierarchical policy on the surrogate env; checkpoints; the registry."""

import numpy as np
import pytest
import torch

from policy.airllm import AirLlm, AirLlmConfig
from policy.checkpoint import save
from policy.ddim import DdimConfig
from policy.env import make_env
from policy.ppo import PpoConfig
from policy.registry import make_policy
from policy.state import PolicyState
from policy.train import greedy_reward, train


def _learner(problem, seed=0):
    return AirLlm(problem, PpoConfig(hidden=64, lr=1e-3, actor_out_gain=1.0), DdimConfig(hidden=64, blocks=2),
                  AirLlmConfig(), seed=seed)


def test_hierarchical_training_improves_reward(cfg):
    torch.set_num_threads(1)
    envs = [make_env(cfg, "surrogate", seed=i) for i in range(8)]
    learner = _learner(envs[0].problem)
    before = greedy_reward(learner, envs[0])
    curve = train(learner, envs, episodes=8 * 12, episodes_per_update=1)
    after = np.mean([r["eval_reward"] for r in curve[-3:]])
    assert after > before + 0.5, (before, after)
    assert curve[-1]["train_reward"] > curve[0]["train_reward"]


def test_checkpoint_round_trip_and_policy_from_state(cfg, tmp_path):
    env = make_env(cfg, "surrogate")
    learner = _learner(env.problem)
    path = save(learner, tmp_path / "airllm.pt")
    policy = make_policy(f"airllm:{path}", cost=lambda r, s: 0.0, candidates=(1, 2))
    p = env.problem
    state = PolicyState(snr_db=3.0, bandwidth_hz=p.link.occupied_bandwidth_hz, entropy=0.9, oov_rate=0.1, modules=p.modules,
                        shapes=p.shapes, r_max=p.r_max)
    a, b = policy.choose(state), policy.choose(state)
    assert a == b and set(a) == set(p.modules) and all(0 <= r <= p.r_max for r in a.values())
    expected = learner.act(p.observe_state(state)[None], explore=False)[0][0]
    assert [a[m] for m in p.modules] == expected or sum(expected) == 0
    with pytest.raises(Exception):
        policy.choose(PolicyState(snr_db=3.0, bandwidth_hz=1e5, entropy=0.9, oov_rate=0.1, modules=["x"],
                                  shapes={"x": (4, 4)}))


def test_registry_knows_the_new_policies():
    assert make_policy("adalora:3").adalora_target_rank == 3
    with pytest.raises(Exception):
        make_policy("airllm:/nonexistent/ckpt.pt")


class _PrefersSmall(torch.nn.Module):
    """A stand-in reward critic: Q = -sum(x0), so the smallest candidate is best."""

    def forward(self, obs, x0):
        return -x0.sum(dim=-1)


def test_critic_picks_the_best_candidate_and_waits_for_warm_up(cfg):
    env = make_env(cfg, "surrogate")
    learner = _learner(env.problem)
    obs = torch.zeros((2, env.problem.obs_dim))
    x0 = torch.stack([torch.full((4, env.problem.n), v) for v in (0.5, -0.2, -0.9, 0.1)], dim=1)  # [B=4, K=4, n]
    x0 = x0[:2]
    assert torch.equal(learner._pick(obs, x0), x0[:, 0])  # before warm-up: the first candidate
    learner.critic = _PrefersSmall()
    learner.critic_ready = True
    assert torch.equal(learner._pick(obs, x0), x0[:, 2])


def test_reward_critic_learns_the_replay_rewards(cfg):
    torch.manual_seed(0)
    env = make_env(cfg, "surrogate")
    p = env.problem
    learner = AirLlm(p, PpoConfig(hidden=32), DdimConfig(hidden=32, blocks=1),
                     AirLlmConfig(critic_updates=300, critic_warmup=64), seed=0)
    rng = np.random.default_rng(0)
    obs = env.reset()
    for _ in range(400):  # reward = minus the adapter's size: the critic must rank candidates by it
        x = rng.uniform(-1, 1, p.n).astype(np.float32)
        learner.replay.append((np.zeros(learner.cfg.latent_dim), x, 0.0, obs, -float(x.sum())))
    learner.update_critic()
    learner.update_critic()
    assert learner.critic_ready
    test = torch.as_tensor(rng.uniform(-1, 1, (200, p.n)), dtype=torch.float32)
    q = learner.critic(torch.as_tensor(np.repeat(obs[None], 200, 0)), test).detach().numpy()
    assert np.corrcoef(q, -test.sum(dim=1).numpy())[0, 1] > 0.9
