"""Gradient checks for the code estimators: straight-through, HashGNN guidance, HQ-GNN's GSTE."""

from __future__ import annotations

import pytest
import torch
from hashrec.indexer.quantizers.estimators import (
    annealed_sign,
    gste,
    hashgnn_guided,
    hutchinson_delta,
    uniform_quantize,
)


def test_annealed_sign_is_tanh_before_the_straight_through_phase():
    x = torch.tensor([-1.5, -0.2, 0.3, 2.0], requires_grad=True)
    out = annealed_sign(x, beta=3.0, straight_through=False)
    assert torch.allclose(out, torch.tanh(3.0 * x))


def test_hashgnn_guidance_with_probability_one_is_sign_with_identity_gradient():
    x = torch.tensor([[-1.5, -0.2], [0.3, 2.0]], requires_grad=True)
    out = hashgnn_guided(x, prob=1.0)
    assert torch.equal(out.detach(), torch.sign(x.detach()))
    upstream = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    out.backward(upstream)
    # identity from sign(z) to z, then tanh's derivative from z to x
    assert torch.allclose(x.grad, upstream * (1 - torch.tanh(x.detach()) ** 2), atol=1e-6)


def test_hashgnn_guidance_with_probability_zero_is_the_continuous_code():
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(hashgnn_guided(x, prob=0.0), torch.tanh(x))


def test_hashgnn_guidance_switches_whole_rows_at_the_given_rate():
    x = torch.randn(4000, 8, generator=torch.Generator().manual_seed(1))
    out = hashgnn_guided(x, prob=0.3, generator=torch.Generator().manual_seed(2))
    hard_rows = (out.abs() == 1).all(dim=1)
    soft_rows = torch.isclose(out, torch.tanh(x)).all(dim=1)
    assert bool((hard_rows | soft_rows).all())
    assert 0.27 < float(hard_rows.float().mean()) < 0.33


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_uniform_quantize_levels(bits):
    x = torch.linspace(-2, 2, 1001)
    levels = torch.unique(uniform_quantize(x, bits))
    assert len(levels) == 2**bits
    assert float(levels.min()) == pytest.approx(-1.0) and float(levels.max()) == pytest.approx(1.0)
    if bits > 1:  # the nearest level inside the range
        inside = x.abs() <= 1
        step = 2.0 / (2**bits - 1)
        assert float((uniform_quantize(x, bits) - x)[inside].abs().max()) <= step / 2 + 1e-6


def test_gste_gradient_is_the_element_wise_scaled_straight_through_gradient():
    x = torch.tensor([-1.4, -0.6, -0.1, 0.2, 0.7, 0.95], requires_grad=True)
    g = torch.tensor([0.5, -1.0, 2.0, -0.3, 1.5, -2.0])
    delta = 0.4
    out = gste(x, delta, bits=1)
    assert torch.equal(out.detach(), torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]))
    out.backward(g)
    xd = x.detach()
    expected = g * (1 + delta * torch.sign(g) * (xd - out.detach())) * (xd.abs() <= 1)
    assert torch.allclose(x.grad, expected)
    assert x.grad[0] == 0  # outside the clip range, as the clipped STE


def test_gste_with_zero_delta_is_the_clipped_straight_through_estimator():
    x = torch.tensor([-0.8, 0.1, 1.2, -0.3], requires_grad=True)
    g = torch.tensor([1.0, 2.0, 3.0, -4.0])
    gste(x, 0.0, bits=2).backward(g)
    assert torch.equal(x.grad, g * (x.detach().abs() <= 1))


def test_gste_amplifies_or_damps_by_the_sign_of_the_gradient_times_the_rounding_error():
    # 2 bits: levels -1, -1/3, 1/3, 1; x = 0.3 rounds up to 1/3, so x - x_q = -1/30.
    x = torch.tensor([0.3, 0.3], requires_grad=True)
    gste(x, 0.5, bits=2).backward(torch.tensor([-1.0, 1.0]))
    assert torch.allclose(x.grad, torch.tensor([-(1 + 0.5 / 30), 1 - 0.5 / 30]))


def test_hutchinson_trace_matches_a_known_hessian():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=gen)
    hessian = a @ a.T + torch.eye(6)

    def loss(x):
        return 0.5 * x @ hessian @ x

    x = torch.randn(6, generator=gen)
    g = hessian @ x
    expected = max(0.0, float(torch.trace(hessian)) / 6 / (3 * float(g.std())))
    estimate = hutchinson_delta(loss, [x], samples=4000, generator=torch.Generator().manual_seed(3))
    assert estimate == pytest.approx(expected, rel=0.1)


def test_hutchinson_delta_is_zero_for_a_concave_loss():
    def loss(x):
        return -(x**2).sum()

    assert hutchinson_delta(loss, [torch.ones(3, 4) * torch.arange(4.0)]) == 0.0
