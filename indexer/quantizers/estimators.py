"""Gradient estimators for binary and low-bit codes (torch).

Each function takes the continuous pre-code activations ``x`` and returns codes whose forward
values are what serving uses and whose backward pass is the estimator's:

- :func:`annealed_sign`: ``tanh(beta x)``, or ``sign(x)`` with tanh's gradient (CIGAR/HashNet).
- :func:`hashgnn_guided`: HashGNN's hash layer output ``z = tanh(x)``, replaced per row by
  ``sign(z)`` with an identity (straight-through) gradient with probability ``prob``.
- :class:`GeneralizedSTE`: HQ-GNN's Hessian-aware generalized straight-through estimator, for
  1-bit (sign) and b-bit uniform quantization: ``dL/dx = g * (1 + delta * sign(g) * (x - x_q))``.
- :func:`hutchinson_delta`: HQ-GNN's ``delta = max(0, (Tr(H) / N) / (3 std(g)))`` with ``Tr(H)``
  from Hutchinson's estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def annealed_sign(x: torch.Tensor, beta: float, straight_through: bool) -> torch.Tensor:
    """tanh(beta x), or sign(x) with tanh(beta x)'s gradient passed straight through."""
    soft = torch.tanh(beta * x)
    if not straight_through:
        return soft
    return soft + (torch.sign(x) - soft).detach()


def _draw(
    sample: Callable[..., torch.Tensor],
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Random numbers drawn on the generator's device (the CPU by default), then moved to ``device``.

    Drawing on the CPU makes a CUDA run use the same numbers as a CPU run with the same seed.
    """
    where = generator.device if generator is not None else torch.device("cpu")
    return sample(*shape, generator=generator, device=where).to(device)


def hashgnn_guided(x: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """HashGNN's stochastic guidance on z = tanh(x).

    Each row is the binary code sign(z) (identity gradient to z) with probability ``prob`` and
    the continuous z otherwise; ``prob`` is raised over training so the model ends on the codes.
    """
    z = torch.tanh(x)
    hard = z + (torch.sign(z) - z).detach()
    use_hard = _draw(torch.rand, (x.shape[0], 1), generator, x.device) < prob
    return torch.where(use_hard, hard, z)


def uniform_quantize(x: torch.Tensor, bits: int, clip: float = 1.0) -> torch.Tensor:
    """sign(x) (zero -> +1) for one bit; else 2^bits uniform levels spanning [-clip, clip]."""
    if bits == 1:
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
    step = 2.0 * clip / (2**bits - 1)
    return -clip + step * torch.round((x.clamp(-clip, clip) + clip) / step)


class GeneralizedSTE(torch.autograd.Function):
    """Forward ``uniform_quantize(x, bits, clip)``; backward the element-wise scaled gradient
    ``g * (1 + delta * sign(g) * (x - x_q))``, zero outside [-clip, clip] (as the clipped STE).

    ``delta = 0`` is the plain clipped straight-through estimator.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, delta: float, bits: int, clip: float) -> torch.Tensor:
        quantized = uniform_quantize(x, bits, clip)
        ctx.save_for_backward(x, quantized)
        ctx.delta, ctx.clip = delta, clip
        return quantized

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad,) = grads
        x, quantized = ctx.saved_tensors
        scale = 1.0 + ctx.delta * torch.sign(grad) * (x - quantized)
        inside = (x.abs() <= ctx.clip).to(grad.dtype)
        return grad * scale * inside, None, None, None


def gste(x: torch.Tensor, delta: float, bits: int = 1, clip: float = 1.0) -> torch.Tensor:
    """Quantize ``x`` with the generalized straight-through gradient (see :class:`GeneralizedSTE`)."""
    out = GeneralizedSTE.apply(x, delta, bits, clip)
    assert isinstance(out, torch.Tensor)
    return out


def hutchinson_delta(
    loss_of_codes: Callable[..., torch.Tensor],
    codes: Sequence[torch.Tensor],
    samples: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """HQ-GNN's delta for the given loss, evaluated at the (detached) quantized codes.

    Tr(H) is estimated as the mean of ``v^T H v`` over Rademacher vectors ``v`` (Hessian-vector
    products by double backward); ``N`` is the number of code entries and ``std(g)`` the standard
    deviation of the loss gradient over them.
    """
    leaves = [c.detach().clone().requires_grad_(True) for c in codes]
    grads = torch.autograd.grad(loss_of_codes(*leaves), leaves, create_graph=True)
    flat_grad = torch.cat([g.reshape(-1) for g in grads])
    trace = 0.0
    for _ in range(samples):
        vs = [
            _draw(
                lambda *shape, **kw: torch.randint(0, 2, shape, **kw), leaf.shape, generator, leaf.device
            ).to(leaf.dtype)
            * 2
            - 1
            for leaf in leaves
        ]
        hv = torch.autograd.grad(grads, leaves, grad_outputs=vs, retain_graph=True)
        trace += float(sum((v * h).sum() for v, h in zip(vs, hv, strict=True)))
    mean_trace = trace / samples / flat_grad.numel()
    std = float(flat_grad.detach().std())
    if std == 0.0:
        return 0.0
    return max(0.0, mean_trace / (3.0 * std))
