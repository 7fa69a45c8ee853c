"""PPO's advantage estimation and clipped objective on tiny cases computed by hand."""

import math

import numpy as np
import pytest
import torch

from policy.ppo import Agent, PpoConfig, RewardScaler, clipped_policy_loss, gae, make_batch


def test_gae_two_steps_by_hand():
    # t=1 ends the episode: delta1 = 1 - 0.5 = 0.5; t=0: delta0 = 1 + 0.9*0.5 - 0.5 = 0.95, A0 = 0.95 + 0.9*0.8*0.5
    adv, ret = gae(np.array([1.0, 1.0]), np.array([0.5, 0.5]), np.array([0, 1]), next_value=10.0, gamma=0.9, lam=0.8)
    assert adv == pytest.approx([1.31, 0.5])
    assert ret == pytest.approx([1.81, 1.0])


def test_gae_bootstraps_from_next_value_when_not_done():
    adv, ret = gae(np.array([0.0]), np.array([1.0]), np.array([0]), next_value=2.0, gamma=0.5, lam=0.9)
    assert adv == pytest.approx([0.0]) and ret == pytest.approx([1.0])
    adv, _ = gae(np.array([0.0]), np.array([1.0]), np.array([0]), next_value=4.0, gamma=0.5, lam=0.9)
    assert adv == pytest.approx([1.0])


def test_gae_lambda_one_is_discounted_return_minus_value():
    r, v = np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.2, 0.1])
    adv, _ = gae(r, v, np.array([0, 0, 1]), 0.0, gamma=0.5, lam=1.0)
    assert adv == pytest.approx([1 + 0.5 * 2 + 0.25 * 3 - 0.3, 2 + 0.5 * 3 - 0.2, 3 - 0.1])


@pytest.mark.parametrize("ratio, advantage, expected", [
    (1.5, 1.0, -1.2),   # clipped at 1 + 0.2: no credit beyond the trust region
    (1.5, -1.0, 1.5),   # unclipped: the pessimistic side
    (0.5, 1.0, -0.5),   # unclipped
    (0.5, -1.0, 0.8),   # clipped at 1 - 0.2
    (1.1, 2.0, -2.2),   # inside the region
])
def test_clipped_objective_by_hand(ratio, advantage, expected):
    loss = clipped_policy_loss(torch.tensor([math.log(ratio)]), torch.tensor([0.0]), torch.tensor([advantage]), 0.2)
    assert float(loss) == pytest.approx(expected)


def test_make_batch_runs_gae_per_environment():
    cfg = PpoConfig(gamma=0.9, gae_lambda=0.8)
    obs = [np.zeros((2, 3))] * 2
    batch = make_batch(obs, [np.zeros((2, 1))] * 2, [np.zeros(2)] * 2, [np.array([1.0, 0.0]), np.array([1.0, 0.0])],
                       [np.array([0.5, 0.0])] * 2, [np.array([0, 0]), np.array([1, 1])], np.array([10.0, 0.0]), cfg)
    # environment 0 is the hand case above; environment 1 earns nothing
    assert batch.advantages.numpy().reshape(2, 2)[:, 0] == pytest.approx([1.31, 0.5])
    assert batch.advantages.numpy().reshape(2, 2)[:, 1] == pytest.approx([0.0, 0.0])


def test_agent_log_prob_matches_the_gaussian():
    agent = Agent(3, 2, PpoConfig(hidden=8, init_log_std=0.0))
    obs = torch.zeros(1, 3)
    action, logprob, _, _ = agent.act(obs, torch.zeros(1, 2))
    mean = agent.actor_mean(obs)[0].detach()
    expected = sum(-0.5 * float(m) ** 2 - 0.5 * math.log(2 * math.pi) for m in mean)
    assert logprob[0].item() == pytest.approx(expected, rel=1e-5)


def test_reward_scaler_divides_by_the_running_std():
    s = RewardScaler()
    out = s(np.array([1.0, 3.0]))
    assert out == pytest.approx(np.array([1.0, 3.0]) / 1.0)
