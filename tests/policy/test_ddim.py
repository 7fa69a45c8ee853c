"""The DDIM sampler: deterministic with eta 0, guidance 1 is the conditional model, training fits a condition."""

import torch

from policy.ddim import Ddim, DdimConfig


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return Ddim(6, 4, DdimConfig(hidden=32, blocks=2, **kw))


def test_eta_zero_is_deterministic_given_x_t():
    ddim = _model()
    cond = torch.randn(3, 4)
    x_t = torch.randn(3, 6)
    a = ddim.sample(cond, x_t=x_t, eta=0.0)
    b = ddim.sample(cond, x_t=x_t, eta=0.0, generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    assert a.shape == (3, 6) and a.abs().max() <= 1.0


def test_eta_positive_is_stochastic():
    ddim = _model()
    cond, x_t = torch.randn(2, 4), torch.randn(2, 6)
    a = ddim.sample(cond, x_t=x_t, eta=1.0, generator=torch.Generator().manual_seed(1))
    b = ddim.sample(cond, x_t=x_t, eta=1.0, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


def test_guidance_one_equals_the_conditional_model():
    ddim = _model()
    x, cond = torch.randn(5, 6), torch.randn(5, 4)
    t = torch.tensor([0, 10, 500, 900, 999])
    cond_only = ddim.model(x, t, cond, torch.ones(5))
    assert torch.allclose(ddim.guided_eps(x, t, cond, 1.0), cond_only)
    # the mixing formula at a guidance next to 1 gives the same sample as the conditional model alone
    x_t = torch.randn(5, 6)
    assert torch.allclose(ddim.sample(cond, x_t=x_t, guidance=1.0), ddim.sample(cond, x_t=x_t, guidance=1.0 + 1e-7),
                          atol=1e-4)
    # guidance 0 is the unconditional model: the condition then has no effect
    other = torch.randn(5, 4)
    assert torch.allclose(ddim.sample(cond, x_t=x_t, guidance=0.0), ddim.sample(other, x_t=x_t, guidance=0.0))


def test_training_learns_a_conditional_target():
    torch.manual_seed(0)
    ddim = Ddim(2, 1, DdimConfig(hidden=64, blocks=2, train_steps=100, sample_steps=20))
    opt = torch.optim.Adam(ddim.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(600):
        c = torch.randint(0, 2, (64, 1)).float()
        x0 = torch.where(c > 0, torch.tensor([0.7, -0.5]), torch.tensor([-0.6, 0.4]))
        loss = ddim.loss(x0, c * 2 - 1, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = ddim.sample(torch.tensor([[1.0], [-1.0]]), generator=gen)
    assert torch.allclose(out[0], torch.tensor([0.7, -0.5]), atol=0.2)
    assert torch.allclose(out[1], torch.tensor([-0.6, 0.4]), atol=0.2)
