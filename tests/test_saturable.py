"""Saturable-absorber physics and the simulated SLM + absorber layer: formulas, noise, quantisation, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from pydantic import ValidationError

from labsat.physics.saturable import approximation_ratio, derivative, probe_transmission, saturation, transmit
from labsat.simulators.saturable import SaturableLayerSimulator, SaturableSimConfig

FIELDS = torch.linspace(-4, 4, 81, dtype=torch.float64)


@pytest.mark.parametrize(("alpha0", "i_sat"), [(0.5, 1.0), (10.0, 1.0), (30.0, 2.5)])
def test_the_exact_derivative_is_autograd_of_the_transmission(alpha0: float, i_sat: float) -> None:
    field = FIELDS.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(transmit(field, alpha0, i_sat).sum(), field)
    assert torch.allclose(derivative(FIELDS, alpha0, i_sat), autograd, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha0", [1.0, 5.0, 10.0, 30.0])
def test_probe_over_exact_is_the_ratio_and_worst_at_saturation(alpha0: float) -> None:
    s = saturation(FIELDS, 1.0)
    ratio = probe_transmission(s, alpha0) / derivative(FIELDS, alpha0, 1.0)
    assert torch.allclose(ratio, 1 / (1 + alpha0 * s / (1 + s) ** 2), rtol=1e-12)
    assert torch.allclose(ratio, approximation_ratio(s, alpha0), rtol=1e-12)
    assert bool(((ratio > 0) & (ratio <= 1)).all())
    grid = torch.linspace(0, 10, 10_001, dtype=torch.float64)
    worst = approximation_ratio(grid, alpha0)
    assert float(grid[worst.argmin()]) == pytest.approx(1.0, abs=1e-3)
    assert float(worst.min()) == pytest.approx(1 / (1 + alpha0 / 4))


def test_worst_case_ratios_match_the_research_table() -> None:
    worst = {alpha0: float(approximation_ratio(torch.tensor(1.0), alpha0)) for alpha0 in (1, 5, 10, 30)}
    assert worst == pytest.approx({1: 0.80, 5: 0.44, 10: 0.29, 30: 0.12}, abs=0.005)


def test_no_absorption_is_the_identity_and_the_probe_exact() -> None:
    assert torch.equal(transmit(FIELDS, 0.0, 1.0), FIELDS)
    assert torch.equal(derivative(FIELDS, 0.0, 1.0), torch.ones_like(FIELDS))


def test_the_transmission_keeps_the_sign_of_a_field_and_bleaches_towards_one() -> None:
    out = transmit(FIELDS, 10.0, 1.0)
    assert torch.equal(out.sign(), FIELDS.sign())
    gain = (out / FIELDS)[FIELDS > 0]
    assert bool((gain.diff() > 0).all())  # stronger fields are absorbed less
    assert float(gain[0]) < 0.05 and float(transmit(torch.tensor(1e3), 10.0, 1.0) / 1e3) > 0.99


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda: transmit(FIELDS, -1.0, 1.0), "alpha0"),
        (lambda: transmit(FIELDS, float("nan"), 1.0), "alpha0"),
        (lambda: derivative(FIELDS, 10.0, 0.0), "i_sat"),
        (lambda: probe_transmission(torch.tensor([-0.1]), 10.0), "saturation"),
        (lambda: approximation_ratio(torch.tensor([1.0]), -2.0), "alpha0"),
    ],
)
def test_bad_physics_parameters_are_refused_by_name(call: Callable[[], object], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        call()


def test_bad_simulator_settings_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="alpha0"):
        SaturableSimConfig(alpha0=-1.0)
    with pytest.raises(ValidationError, match="i_sat"):
        SaturableSimConfig(i_sat=0.0)


def test_the_simulator_refuses_mismatched_shapes() -> None:
    device = SaturableLayerSimulator()
    with pytest.raises(ValueError, match=r"x \(batch, in\)"):
        device.forward(torch.rand(4, 5), torch.rand(3, 6))
    with pytest.raises(ValueError, match="probe"):
        device.backward(torch.rand(4, 6), torch.rand(3, 6), torch.rand(4, 6))


def test_a_noiseless_continuous_device_is_the_physics() -> None:
    device = SaturableLayerSimulator(SaturableSimConfig(read_noise=0.0, slm_bits=None))
    x, w = torch.rand(5, 7), 2 * torch.rand(3, 7) - 1
    assert torch.allclose(device.forward(x, w), transmit(x @ w.T, 10.0, 1.0))


def test_the_slm_shows_its_levels_and_passes_gradients_straight_through() -> None:
    device = SaturableLayerSimulator(SaturableSimConfig(slm_bits=3))
    w = torch.linspace(-1.2, 1.2, 101, requires_grad=True)
    shown = device.displayed(w)
    assert len(torch.unique(shown.detach())) == 8 and float(shown.detach().abs().max()) == pytest.approx(1.0)
    (grad,) = torch.autograd.grad(shown.sum(), w)
    assert torch.equal(grad, torch.ones_like(w))


def test_read_noise_is_seeded_and_relative_to_each_samples_full_scale() -> None:
    config = SaturableSimConfig(read_noise=0.02, slm_bits=None)
    x, w = torch.rand(400, 8, generator=torch.Generator().manual_seed(1)), torch.full((6, 8), 0.4)
    first, again = SaturableLayerSimulator(config, seed=3), SaturableLayerSimulator(config, seed=3)
    assert torch.equal(first.forward(x, w), again.forward(x, w))
    assert not torch.equal(first.forward(x, w), SaturableLayerSimulator(config, seed=4).forward(x, w))
    clean = first.exact_layer(x, w)
    relative = (first.forward(x, w) - clean) / clean.abs().amax(dim=1, keepdim=True)
    assert float(relative.std()) == pytest.approx(0.02, rel=0.1)


def test_every_pass_is_counted_with_its_bench_time() -> None:
    config = SaturableSimConfig(slm_settle_s=0.02, exposure_s=0.001)
    device = SaturableLayerSimulator(config)
    x, w = torch.rand(10, 4), torch.rand(3, 4)
    device.forward(x, w)
    device.backward(x, w, torch.rand(10, 3))
    assert (device.stats.forwards, device.stats.programs, device.stats.samples) == (2, 2, 20)
    assert device.stats.bench_time_s == pytest.approx(2 * (0.02 + 10 * 0.001))
