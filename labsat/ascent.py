"""Gradient estimates for black-box devices: central finite differences and SPSA.

On hardware there is no autograd: the only thing a device offers is a loss measured at a control setting,
and every measurement is a query that costs settle and integration time. These estimators turn loss
queries into a gradient (for SAT's ascent, or for the descent too) and say how many queries they spent,
because query count, not arithmetic, is what a hardware step costs.

* :func:`central_difference`: 2P queries for P controls, bias O(h²); for few controls.
* :func:`spsa_gradient`: 2q queries whatever P is (q random ±1 directions); for many controls.
  :class:`SPSA` adds an exponential moving average across calls ("momentum ascent"): SAT's ascent only
  needs a direction, and averaging past estimates sharpens it at no extra query.

An objective ``f`` takes a control tensor shaped like θ and returns the loss (a float or a 0-d tensor).
With ``batched=True`` it instead takes a stack ``(B, *θ.shape)`` and returns ``B`` losses, which lets a
simulated device evaluate all probes in one call; the estimate is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

Objective = Callable[[Tensor], float | Tensor]
"""Loss of the device at a control setting, or (``batched=True``) the losses at a stack of settings."""


@dataclass(frozen=True)
class GradientEstimate:
    """A gradient estimate and the number of objective evaluations (device queries) it cost."""

    grad: Tensor
    evaluations: int


class GradientEstimator(Protocol):
    """Anything that estimates ∇f(θ) from loss queries, reporting its query count."""

    def __call__(self, f: Objective, theta: Tensor) -> GradientEstimate: ...


def _evaluate(f: Objective, probes: Tensor, batched: bool) -> Tensor:
    """Losses at each probe ``probes[i]`` as float64, so that differences of nearby losses keep precision."""
    if batched:
        values = torch.as_tensor(f(probes))
        if values.shape != probes.shape[:1]:
            raise ValueError(f"batched objective returned shape {tuple(values.shape)}, expected ({len(probes)},)")
    else:
        values = torch.tensor([float(f(x)) for x in probes], dtype=torch.float64)
    return values.to(device=probes.device, dtype=torch.float64)


def _steps(step: float | Tensor, theta: Tensor, name: str) -> Tensor:
    """A step size broadcast to one positive entry per control, flattened."""
    flat = torch.broadcast_to(torch.as_tensor(step, dtype=theta.dtype, device=theta.device), theta.shape).flatten()
    if not bool((flat > 0).all()):
        raise ValueError(f"{name} must be > 0")
    return flat


def central_difference(
    f: Objective, theta: Tensor, h: float | Tensor = 1e-3, *, batched: bool = False
) -> GradientEstimate:
    """Central finite differences ``(f(θ + h e_i) − f(θ − h e_i)) / 2h``: 2P evaluations.

    ``h`` is a scalar or a per-control tensor (controls in different units need different steps). On a
    noisy device pick ``h ≈ (3σ/f''')^{1/3}`` and well below SAT's ρ, so the gradient at θ + ε is not
    smeared over the ball.
    """
    x = theta.detach()
    n = x.numel()
    hs = _steps(h, x, "h")
    offsets = torch.diag(hs)
    centre = x.flatten()
    probes = torch.cat([centre + offsets, centre - offsets]).view(2 * n, *x.shape)
    values = _evaluate(f, probes, batched)
    grad = (values[:n] - values[n:]) / (2.0 * hs.double())
    return GradientEstimate(grad.to(x.dtype).view_as(x), evaluations=2 * n)


def spsa_gradient(
    f: Objective,
    theta: Tensor,
    *,
    c: float | Tensor = 1e-2,
    q: int = 1,
    generator: torch.Generator,
    batched: bool = False,
) -> GradientEstimate:
    """SPSA (Spall 1992) averaged over ``q`` Rademacher directions Δ: 2q evaluations.

    ``ĝ = mean_j [f(θ + cΔ_j) − f(θ − cΔ_j)] / (2c) · Δ_j`` (1/Δ = Δ for ±1 entries). Unbiased up to O(c²);
    one direction has cosine ≈ 1/√P with the true gradient, q directions ≈ √(q/(q + P)). ``generator`` is
    a CPU generator so a seed gives the same directions on every device.
    """
    if q < 1:
        raise ValueError(f"q must be >= 1, got {q}")
    x = theta.detach()
    n = x.numel()
    cs = _steps(c, x, "c")
    signs = torch.randint(0, 2, (q, n), generator=generator).to(device=x.device, dtype=x.dtype).mul_(2).sub_(1)
    centre = x.flatten()
    probes = torch.cat([centre + cs * signs, centre - cs * signs]).view(2 * q, *x.shape)
    values = _evaluate(f, probes, batched)
    slopes = (values[:q] - values[q:]) / 2.0  # directional differences f(θ+cΔ) − f(θ−cΔ), halved
    grad = (slopes[:, None] * signs.double() / cs.double()).mean(dim=0)
    return GradientEstimate(grad.to(x.dtype).view_as(x), evaluations=2 * q)


@dataclass
class CentralDifference:
    """:class:`GradientEstimator` for :func:`central_difference` with a fixed step."""

    h: float | Tensor = 1e-3
    batched: bool = False

    def __call__(self, f: Objective, theta: Tensor) -> GradientEstimate:
        return central_difference(f, theta, self.h, batched=self.batched)


@dataclass
class SPSA:
    """Seeded SPSA :class:`GradientEstimator` with an optional momentum ascent.

    With ``beta > 0`` each call returns the bias-corrected exponential moving average
    ``m_t = β m_{t−1} + (1 − β) ĝ_t``, ``m_t / (1 − β^t)`` (as Adam does, so the first call returns ĝ_1
    itself). Across SAT steps θ moves slowly, so the average is a better ascent direction than one noisy
    estimate, for no extra query; the reported evaluations are those of the fresh estimate (2q).
    Call :meth:`reset` when the controls being estimated change.
    """

    c: float | Tensor = 1e-2
    q: int = 1
    beta: float = 0.0
    seed: int = 0
    batched: bool = False
    _generator: torch.Generator = field(init=False, repr=False)
    _average: Tensor | None = field(default=None, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")
        self._generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, f: Objective, theta: Tensor) -> GradientEstimate:
        fresh = spsa_gradient(f, theta, c=self.c, q=self.q, generator=self._generator, batched=self.batched)
        if self.beta == 0.0:
            return fresh
        if self._average is None or self._average.shape != fresh.grad.shape:
            self._average = torch.zeros_like(fresh.grad)
            self._count = 0
        self._average.mul_(self.beta).add_(fresh.grad, alpha=1.0 - self.beta)
        self._count += 1
        return GradientEstimate(self._average / (1.0 - self.beta**self._count), fresh.evaluations)

    def reset(self) -> None:
        """Forget the moving average (the random stream continues)."""
        self._average = None
        self._count = 0
