"""Sharpness estimators against a dense Hessian on a control-space model small enough to build one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.evaluation import (
    FlatControls,
    HessianOperator,
    LossFn,
    extreme_eigenvalues,
    hutchinson_trace,
    sharpness,
    top_eigenpairs,
)
from labsat.physics.mrr import sat_reduced_weight

IN, OUT = 10, 3  # 30 heater controls


@pytest.fixture(scope="module")
def lorentzian_layer() -> tuple[FlatControls, LossFn, Tensor]:
    """A tiny MRR layer in control space (the SAT paper's Lorentzian weight map), trained near a minimum.

    A trained point is where sharpness is reported, and there the Hessian is (nearly) positive
    semi-definite, so the dominant eigenvalue is λmax and the trace is the sum of curvatures.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(60, IN, generator=generator, dtype=torch.float64)
    y = torch.randint(0, OUT, (60,), generator=generator)
    controls = FlatControls.pack({"heaters": 0.3 * torch.randn(OUT, IN, generator=generator, dtype=torch.float64)})
    loss_fn = controls.loss(lambda named: F.cross_entropy(4 * x @ sat_reduced_weight(named["heaters"]).T, y))
    theta = controls.vector.clone().requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=0.05)
    for _ in range(50):
        optimizer.zero_grad()
        loss_fn(theta).backward()
        optimizer.step()
    return controls, loss_fn, theta.detach()


def test_hvp_matches_dense_hessian(lorentzian_layer) -> None:
    _, loss_fn, theta = lorentzian_layer
    dense = torch.autograd.functional.hessian(loss_fn, theta)
    probes = torch.randn(4, theta.numel(), generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    operator = HessianOperator(loss_fn, theta)
    torch.testing.assert_close(operator(probes[0]), dense @ probes[0])
    torch.testing.assert_close(operator.matmat(probes, chunk_size=3), probes @ dense)


def test_top_eigenpairs_match_dense_spectrum(lorentzian_layer) -> None:
    _, loss_fn, theta = lorentzian_layer
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.autograd.functional.hessian(loss_fn, theta))
    order = eigenvalues.abs().argsort(descending=True)
    top = top_eigenpairs(loss_fn, theta, k=2, tol=1e-6, max_iter=500)
    assert top.converged
    for i in range(2):
        expected = eigenvalues[order[i]]
        assert abs(top.values[i] - expected) <= 0.01 * abs(expected)
        assert abs(torch.dot(top.vectors[i], eigenvectors[:, order[i]])) > 0.99  # same direction up to sign
    assert top.values[0] == pytest.approx(float(eigenvalues.max()), rel=0.01)  # at a minimum: λmax itself


def test_hutchinson_trace_matches_dense_trace(lorentzian_layer) -> None:
    _, loss_fn, theta = lorentzian_layer
    exact = float(torch.autograd.functional.hessian(loss_fn, theta).trace())
    estimate = hutchinson_trace(loss_fn, theta, probes=4000, chunk_size=1000)
    assert estimate.value == pytest.approx(exact, rel=0.04)
    assert abs(estimate.value - exact) < 4 * estimate.stderr


def test_hutchinson_is_exact_for_a_diagonal_hessian() -> None:
    scales = torch.linspace(0.5, 3.0, 30, dtype=torch.float64)
    theta = torch.linspace(-1.0, 1.0, 30, dtype=torch.float64)

    def separable(t: Tensor) -> Tensor:  # each term depends on one control: H = diag(12·c·t² − c·cos t)
        return (scales * t**4 + scales * torch.cos(t)).sum()

    exact = float((12 * scales * theta**2 - scales * torch.cos(theta)).sum())
    estimate = hutchinson_trace(separable, theta, probes=3)
    assert estimate.value == pytest.approx(exact, rel=1e-12)
    assert estimate.stderr == pytest.approx(0.0, abs=1e-9)


def test_sharpness_is_seeded_and_reports_both_numbers(lorentzian_layer) -> None:
    _, loss_fn, theta = lorentzian_layer
    first = sharpness(loss_fn, theta, probes=64, seed=3)
    again = sharpness(loss_fn, theta, probes=64, seed=3)
    assert first == again
    summary = first.as_dict()
    keys = {"lambda_max", "lambda_max_error", "lambda_min", "lambda_min_error", "trace", "trace_stderr"}
    assert keys <= summary.keys()
    assert summary["lambda_max"] > 0 and summary["trace"] > summary["lambda_max"] * 0.5


def test_flat_controls_round_trip_and_filters() -> None:
    named = {"fc1": torch.arange(6.0).view(2, 3), "fc2": torch.arange(4.0), "gain": torch.tensor(5.0)}
    flat = FlatControls.pack(named)
    assert flat.numel == 11
    for name, tensor in flat.unflatten(flat.vector).items():
        torch.testing.assert_close(tensor, named[name])
    assert flat.filters().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3]


def test_power_iteration_rejects_bad_arguments(lorentzian_layer) -> None:
    _, loss_fn, theta = lorentzian_layer
    with pytest.raises(ValueError, match="eigenpairs"):
        top_eigenpairs(loss_fn, theta, k=theta.numel() + 1)
    with pytest.raises(ValueError, match="probes"):
        hutchinson_trace(loss_fn, theta, probes=0)


def test_lanczos_finds_the_algebraic_extremes_of_an_indefinite_quadratic() -> None:
    """λmax is the largest *algebraic* eigenvalue: −9 dominates in magnitude, yet λmax is 4."""
    generator = torch.Generator().manual_seed(5)
    rotation = torch.linalg.qr(torch.randn(40, 40, generator=generator, dtype=torch.float64)).Q
    spectrum = torch.cat([torch.tensor([4.0, -9.0, 3.9]), torch.linspace(-2.0, 2.0, 37)]).double()
    hessian = rotation @ torch.diag(spectrum) @ rotation.T

    def quadratic(t: Tensor) -> Tensor:
        return 0.5 * t @ hessian @ t

    theta = torch.zeros(40, dtype=torch.float64)
    assert float(top_eigenpairs(quadratic, theta, tol=1e-8, max_iter=500).values[0]) == pytest.approx(-9.0)
    extremes = extreme_eigenvalues(quadratic, theta, tol=1e-8)
    assert extremes.converged and extremes.steps <= 40
    assert extremes.lambda_max == pytest.approx(4.0, abs=1e-6) and extremes.lambda_min == pytest.approx(-9.0, abs=1e-6)
    assert extremes.lambda_max_error < 1e-5 and extremes.lambda_min_error < 1e-5
    reported = sharpness(quadratic, theta, probes=8)
    assert reported.lambda_max == pytest.approx(4.0, abs=1e-3) and reported.lambda_min == pytest.approx(-9.0, abs=1e-3)


def test_lanczos_residual_bounds_hold_before_convergence(lorentzian_layer) -> None:
    """Stopped early, each extreme Ritz value still lies within its residual bound of a true eigenvalue."""
    _, loss_fn, theta = lorentzian_layer
    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_fn, theta))
    early = extreme_eigenvalues(loss_fn, theta, max_steps=6, tol=1e-12)
    assert not early.converged and early.steps == 6
    for value, bound in ((early.lambda_max, early.lambda_max_error), (early.lambda_min, early.lambda_min_error)):
        assert float((eigenvalues - value).abs().min()) <= bound + 1e-12
    full = extreme_eigenvalues(loss_fn, theta, tol=1e-9)
    assert full.lambda_max == pytest.approx(float(eigenvalues.max()), rel=1e-6)
    assert full.lambda_min == pytest.approx(float(eigenvalues.min()), abs=1e-6 * float(eigenvalues.abs().max()))
