"""Black-box gradient estimators: accuracy against autograd, query counts, seeding, momentum, SAT use."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from labsat.ascent import (
    SPSA,
    CentralDifference,
    GradientEstimate,
    GradientEstimator,
    central_difference,
    spsa_gradient,
)
from labsat.sat import SAT

DTYPE = torch.float64
P = 16


def _problem(seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """f(θ) = Σ a_i sin θ_i + θᵀAθ with A symmetric: smooth, non-separable, known gradient."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(P, generator=gen, dtype=DTYPE)
    m = torch.randn(P, P, generator=gen, dtype=DTYPE) / P
    theta = torch.randn(P, generator=gen, dtype=DTYPE)
    return a, (m + m.T) / 2, theta


def _objective(a: Tensor, mat: Tensor) -> tuple[Callable[[Tensor], float], Callable[[Tensor], Tensor]]:
    def f(theta: Tensor) -> float:
        return float(a @ torch.sin(theta) + theta @ mat @ theta)

    def f_batched(thetas: Tensor) -> Tensor:
        return torch.sin(thetas) @ a + torch.einsum("bi,ij,bj->b", thetas, mat, thetas)

    return f, f_batched


def _true_grad(a: Tensor, mat: Tensor, theta: Tensor) -> Tensor:
    x = theta.clone().requires_grad_()
    (a @ torch.sin(x) + x @ mat @ x).backward()
    assert x.grad is not None
    return x.grad


def _cos(u: Tensor, v: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(u.flatten(), v.flatten(), dim=0))


def test_central_difference_matches_autograd_with_second_order_error() -> None:
    a, mat, theta = _problem()
    f, f_batched = _objective(a, mat)
    g = _true_grad(a, mat, theta)
    est = central_difference(f, theta, h=1e-2)
    assert isinstance(est, GradientEstimate) and est.evaluations == 2 * P
    assert _cos(est.grad, g) > 0.9
    err_coarse = (est.grad - g).abs().max()
    err_fine = (central_difference(f, theta, h=5e-3).grad - g).abs().max()
    assert 3.0 < err_coarse / err_fine < 5.0  # O(h²): halving h quarters the error
    torch.testing.assert_close(central_difference(f_batched, theta, h=1e-2, batched=True).grad, est.grad)


def test_central_difference_per_control_step_and_shape() -> None:
    a, mat, theta = _problem()
    f, _ = _objective(a, mat)
    h = torch.full((P,), 1e-3, dtype=DTYPE)
    h[0] = 1e-1  # a control in coarser units: its component gets the larger truncation error only
    est = CentralDifference(h=h.view(4, 4))(lambda t: f(t.flatten()), theta.view(4, 4))
    assert est.grad.shape == (4, 4) and est.evaluations == 2 * P
    err = (est.grad.flatten() - _true_grad(a, mat, theta)).abs()
    assert err[0] > 1e-4 > float(err[1:].max())
    with pytest.raises(ValueError, match="h must be > 0"):
        central_difference(f, theta, h=0.0)


def _mean_spsa_cosine(q: int, seeds: range) -> float:
    a, mat, theta = _problem()
    _, f_batched = _objective(a, mat)
    g = _true_grad(a, mat, theta)
    cosines = []
    for seed in seeds:
        est = spsa_gradient(f_batched, theta, c=1e-3, q=q, generator=torch.Generator().manual_seed(seed), batched=True)
        assert est.evaluations == 2 * q
        cosines.append(_cos(est.grad, g))
    return sum(cosines) / len(cosines)


def test_spsa_cosine_grows_with_directions() -> None:
    seeds = range(20)
    cos = {q: _mean_spsa_cosine(q, seeds) for q in (1, 4, 16, 64)}
    assert cos[64] > cos[16] > cos[4] > cos[1] > 0.0, cos
    assert cos[64] > 0.8, cos  # ≈ √(q/(q+P)) = 0.89


def test_spsa_is_seeded_and_batching_does_not_change_it() -> None:
    a, mat, theta = _problem()
    f, f_batched = _objective(a, mat)
    one = SPSA(c=1e-3, q=4, seed=5)(f, theta)
    same = SPSA(c=1e-3, q=4, seed=5, batched=True)(f_batched, theta)
    other = SPSA(c=1e-3, q=4, seed=6)(f, theta)
    torch.testing.assert_close(one.grad, same.grad)
    assert not torch.allclose(one.grad, other.grad)
    assert one.evaluations == 8


def test_single_direction_spsa_is_exact_for_a_linear_function() -> None:
    """For a linear f, f(θ+cΔ) − f(θ−cΔ) = 2c⟨g, Δ⟩, so the estimate is Δ⟨g, Δ⟩ and its mean over Δ is g."""
    g = torch.arange(1.0, 5.0, dtype=DTYPE)
    gen = torch.Generator().manual_seed(0)
    estimates = torch.stack(
        [spsa_gradient(lambda t: float(g @ t), torch.zeros(4, dtype=DTYPE), generator=gen).grad for _ in range(1000)]
    )
    torch.testing.assert_close(estimates.mean(0), g, atol=0.5, rtol=0)  # per-entry std ≈ 0.17
    for est in estimates[:10]:  # each single estimate is exactly Δ⟨g, Δ⟩ with Δ = sign(est)
        torch.testing.assert_close(est, est.sign() * float(g @ est.sign()))


def test_momentum_improves_the_direction_at_a_fixed_point() -> None:
    a, mat, theta = _problem()
    _, f_batched = _objective(a, mat)
    g = _true_grad(a, mat, theta)
    fresh_cos, momentum_cos = [], []
    for seed in range(8):
        estimator = SPSA(c=1e-3, q=2, beta=0.9, seed=seed, batched=True)
        first = estimator(f_batched, theta)
        for _ in range(29):
            last = estimator(f_batched, theta)
        assert last.evaluations == 4  # momentum costs no extra query
        fresh_cos.append(_cos(first.grad, g))  # the first call is the fresh estimate (bias correction)
        momentum_cos.append(_cos(last.grad, g))
    assert sum(momentum_cos) / 8 > sum(fresh_cos) / 8 + 0.2


def test_momentum_reset_forgets_the_average_but_not_the_stream() -> None:
    a, mat, theta = _problem()
    _, f_batched = _objective(a, mat)
    with_momentum = SPSA(c=1e-3, q=2, beta=0.9, seed=3, batched=True)
    plain = SPSA(c=1e-3, q=2, seed=3, batched=True)
    for _ in range(5):
        with_momentum(f_batched, theta)
        plain(f_batched, theta)
    with_momentum.reset()
    torch.testing.assert_close(with_momentum(f_batched, theta).grad, plain(f_batched, theta).grad)


def test_estimators_drive_a_black_box_sat_step() -> None:
    """SAT on a device with no autograd: estimates written into p.grad give the textbook SAM update."""
    a, mat, theta = _problem()
    f, _ = _objective(a, mat)
    estimator: GradientEstimator = CentralDifference(h=1e-4)
    rho, lr = 0.05, 0.1

    controls = theta.clone().requires_grad_()
    sat = SAT([controls], torch.optim.SGD, rho=rho, lr=lr)
    queries = 0
    with torch.no_grad():
        for _ in range(3):
            est = estimator(f, controls)
            controls.grad = est.grad
            sat.first_step()
            est_adv = estimator(f, controls)
            controls.grad = est_adv.grad
            sat.second_step()
            queries += est.evaluations + est_adv.evaluations
    assert queries == 3 * 4 * P

    reference = theta.clone()
    for _ in range(3):
        g = _true_grad(a, mat, reference)
        reference = reference - lr * _true_grad(a, mat, reference + rho * g / g.norm())
    torch.testing.assert_close(controls.detach(), reference, atol=1e-6, rtol=0)
