"""2-D loss landscapes: grid layout, the centre is θ, and a quadratic comes out symmetric and exact."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from labsat.evaluation import FlatControls, filter_normalize, loss_landscape

CURVATURES = torch.tensor([9.0, 4.0, 1.0, 0.5, 0.25, 0.1], dtype=torch.float64)
MINIMUM = torch.tensor([0.3, -0.2, 0.1, 0.0, 0.5, -0.4], dtype=torch.float64)


def quadratic(theta: Tensor) -> Tensor:
    """``½ Σ cᵢ (θᵢ − mᵢ)²``: Hessian ``diag(c)``, top-2 eigenvectors the first two axes."""
    return 0.5 * (CURVATURES * (theta - MINIMUM).square()).sum()


def test_grid_shape_and_centre_is_the_loss_at_theta() -> None:
    theta = MINIMUM + 0.1  # off the minimum: the centre must still be L(θ), not the minimum
    landscape = loss_landscape(quadratic, theta, directions="random", radius=2.0, steps=7, seed=1)
    assert landscape.losses.shape == (7, 7)
    assert landscape.axis.tolist()[3] == 0.0
    assert landscape.axis[0] == -2.0 and landscape.axis[-1] == 2.0
    assert landscape.centre == float(quadratic(theta))


def test_quadratic_along_eigenvectors_is_symmetric_and_exact() -> None:
    landscape = loss_landscape(quadratic, MINIMUM, directions="hessian", radius=1.0, steps=9)
    losses = landscape.losses
    torch.testing.assert_close(losses, losses.flip(0, 1))  # L(−α, −β) = L(α, β) along any directions
    torch.testing.assert_close(losses, losses.flip(0), rtol=1e-4, atol=1e-6)  # no cross term along eigenvectors
    torch.testing.assert_close(losses, losses.flip(1), rtol=1e-4, atol=1e-6)
    alpha, beta = torch.meshgrid(landscape.axis, landscape.axis, indexing="ij")
    torch.testing.assert_close(losses, 0.5 * (9.0 * alpha.square() + 4.0 * beta.square()), rtol=1e-4, atol=1e-6)
    assert landscape.centre == 0.0


def test_random_directions_are_seeded() -> None:
    first = loss_landscape(quadratic, MINIMUM, directions="random", steps=5, seed=7)
    assert torch.equal(first.losses, loss_landscape(quadratic, MINIMUM, directions="random", steps=5, seed=7).losses)
    assert not torch.equal(first.losses, loss_landscape(quadratic, MINIMUM, directions="random", steps=5).losses)


def test_filter_normalisation_matches_each_row_norm_of_theta() -> None:
    controls = FlatControls.pack({"fc1": torch.tensor([[3.0, 4.0], [0.6, 0.8]]), "fc2": torch.tensor([[1.0, 0.0]])})
    direction = torch.tensor([1.0, 1.0, 2.0, 0.0, 5.0, 5.0])
    normalised = filter_normalize(direction, controls.vector, controls.filters())
    norms = [float(torch.linalg.vector_norm(normalised[i : i + 2])) for i in (0, 2, 4)]
    assert norms == pytest.approx([5.0, 1.0, 1.0])
    landscape = loss_landscape(
        quadratic, MINIMUM, directions="random", filter_groups=torch.tensor([0, 0, 0, 1, 1, 1]), steps=3
    )
    assert landscape.filter_normalized


def test_even_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        loss_landscape(quadratic, MINIMUM, directions="random", steps=4)
