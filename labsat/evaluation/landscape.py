"""2-D loss landscapes ``L(θ + α·d₁ + β·d₂)`` around trained controls.

The SAT work shows its flat minimum as a surface over the top-2 Hessian eigenvectors (unit norm, no
filter normalisation); that is the default here, so a BP model's narrow valley and a SAT model's wide
basin can be compared on the same axes. Random Gaussian directions with filter normalisation (Li et al.,
NeurIPS 2018) are the alternative, for comparing models whose control scales differ.

Filter normalisation rescales each row of a control matrix to the norm of that row of θ. A row of heaters
that all sit at 0 V (a ring left at resonance) therefore gets no extent at all; that is the method's
definition, and the reason eigenvectors are the default for control space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from labsat.evaluation.flat import LossFn
from labsat.evaluation.hessian import top_eigenpairs

DirectionKind = Literal["hessian", "random"]


@dataclass(frozen=True)
class Landscape:
    """Losses on a square grid: ``losses[i, j] = L(θ + axis[i]·d₁ + axis[j]·d₂)``."""

    axis: Tensor  # (steps,), symmetric about 0
    losses: Tensor  # (steps, steps)
    directions: DirectionKind
    filter_normalized: bool

    @property
    def centre(self) -> float:
        """The loss at θ itself (the grid is odd-sized and symmetric, so θ is its middle point)."""
        mid = self.losses.shape[0] // 2
        return float(self.losses[mid, mid])

    @property
    def axis_unit(self) -> str:
        """What one step along an axis is: a unit-norm direction moves the controls by one control unit (volt,
        radian) in norm; a filter-normalised one by each filter's own norm of θ, so a step has no control unit."""
        if self.filter_normalized:
            return "filter-normalised direction steps"
        return "control units"

    @property
    def axis_labels(self) -> tuple[str, str]:
        kind = "eigenvector" if self.directions == "hessian" else "random direction"
        return f"α along {kind} 1 ({self.axis_unit})", f"β along {kind} 2 ({self.axis_unit})"


def filter_normalize(direction: Tensor, theta: Tensor, groups: Tensor) -> Tensor:
    """Scale each group (filter) of ``direction`` to the norm of the same group of ``theta``."""
    count = int(groups.max()) + 1
    ratio = _group_norms(theta, groups, count) / _group_norms(direction, groups, count).clamp_min(
        torch.finfo(direction.dtype).tiny
    )
    return direction * ratio[groups]


def _group_norms(values: Tensor, groups: Tensor, count: int) -> Tensor:
    return torch.zeros(count, dtype=values.dtype, device=values.device).index_add_(0, groups, values.square()).sqrt()


def hessian_directions(
    loss_fn: LossFn, theta: Tensor, *, seed: int = 0, max_iter: int = 100, tol: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """The top-2 Hessian eigenvectors (unit norm) at ``theta``.

    The tolerance is far tighter than for λmax alone: the Rayleigh quotient converges quadratically in
    the eigenvector's error, so a value good to 1e-3 can leave a direction a few percent off the axis,
    and the landscape would then mix in the other curvatures.
    """
    vectors = top_eigenpairs(loss_fn, theta, k=2, seed=seed, max_iter=max_iter, tol=tol).vectors
    return vectors[0], vectors[1]


def random_directions(theta: Tensor, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two seeded Gaussian directions (unit norm, so ``radius`` means the same as for eigenvectors)."""
    generator = torch.Generator(device=theta.device).manual_seed(seed)
    pair = torch.randn(2, theta.numel(), generator=generator, device=theta.device, dtype=theta.dtype)
    pair = pair / torch.linalg.vector_norm(pair, dim=1, keepdim=True)
    return pair[0], pair[1]


def grid_losses(
    loss_fn: LossFn, theta: Tensor, directions: tuple[Tensor, Tensor], *, radius: float, steps: int
) -> tuple[Tensor, Tensor]:
    """Evaluate ``loss_fn`` on the ``steps × steps`` grid ``α, β ∈ [−radius, radius]`` (``steps`` odd)."""
    if steps < 3 or steps % 2 == 0:
        raise ValueError(f"steps must be odd and >= 3 so that θ is the grid's centre, got {steps}")
    axis = torch.linspace(-radius, radius, steps, dtype=theta.dtype, device=theta.device)
    axis[steps // 2] = 0.0  # exact zero: the centre must be θ itself, not θ plus rounding error
    d1, d2 = directions
    losses = torch.empty(steps, steps, dtype=torch.float64)
    with torch.no_grad():
        for i, alpha in enumerate(axis):
            for j, beta in enumerate(axis):
                losses[i, j] = float(loss_fn(theta + alpha * d1 + beta * d2))
    return axis.cpu(), losses


def loss_landscape(
    loss_fn: LossFn,
    theta: Tensor,
    *,
    directions: DirectionKind = "hessian",
    filter_groups: Tensor | None = None,
    radius: float = 1.0,
    steps: int = 51,
    seed: int = 0,
) -> Landscape:
    """The landscape around ``theta`` along Hessian or random directions.

    ``filter_groups`` (a group label per control, e.g. :meth:`FlatControls.filters`) turns on filter
    normalisation; without it the directions keep unit norm and ``radius`` is in control units (volts).
    """
    theta = theta.detach()
    if directions == "hessian":
        pair = hessian_directions(loss_fn, theta, seed=seed)
    else:
        pair = random_directions(theta, seed=seed)
    if filter_groups is not None:
        pair = (filter_normalize(pair[0], theta, filter_groups), filter_normalize(pair[1], theta, filter_groups))
    axis, losses = grid_losses(loss_fn, theta, pair, radius=radius, steps=steps)
    return Landscape(axis, losses, directions, filter_groups is not None)
