"""NAT's noise model: read and control σ fitted from repeated readings, drift mapped through the twin, injected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_fakes import fake_physical

from labsat.datasets import load_dataset
from labsat.readout import QueryStats
from labsat.training.checkpoint import load_checkpoint
from labsat.training.config import TrainConfig
from labsat.training.loop import Trainer, train
from labsat.training.nat import NoiseModel, fit_noise, nat_runner
from labsat.training.physical import PhysicalLayer


def _batch(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(32, 16, generator=generator), 1.0 + 2.0 * torch.rand(8, 16, generator=generator)


def test_the_fit_recovers_a_known_control_noise_beside_the_read_noise() -> None:
    physical, device = fake_physical(noise=0.01, control_noise=0.005, twin="truth")
    x, theta = _batch()
    model = fit_noise(physical, x, theta, repeats=32)
    assert device.stats.forwards == 32 and model.fitted and model.repeats == 32
    assert model.control_sigma == pytest.approx(0.005, rel=0.05)
    assert model.read_sigma == pytest.approx(0.01, rel=0.25)


def test_a_device_whose_controls_hold_still_fits_read_noise_only() -> None:
    physical, _ = fake_physical(noise=0.01, twin="truth")
    x, theta = _batch()
    model = fit_noise(physical, x, theta, repeats=32)
    assert model.read_sigma == pytest.approx(0.01, rel=0.05)
    assert model.control_sigma < 2e-4  # what a 0.005 V scatter would be is 25 times more
    assert model.drift_sigma == 0 and model.injected_control_sigma == model.control_sigma  # no drift asked for


def test_a_device_that_reads_back_exactly_fits_no_noise() -> None:
    physical, _ = fake_physical()
    x, theta = _batch()
    model = fit_noise(physical, x, theta, repeats=4)
    assert (model.read_sigma, model.control_sigma) == (0.0, 0.0)


def test_the_drift_term_has_the_output_size_of_the_drift_itself() -> None:
    """Control noise of the mapped σ moves the twin's outputs as much (in mean square) as ±drift does."""
    physical, device = fake_physical(twin="truth")  # its twin takes delta_t_k, so from_system gave it a drift model
    x, theta = _batch()
    model = fit_noise(physical, x, theta, repeats=2, drift=0.5)
    assert model.drift_scale == 0.5 and model.drift_sigma > 0.01  # volts: tens of mV per half kelvin
    assert model.injected_control_sigma == pytest.approx(model.drift_sigma, rel=1e-6)
    drift_twin = physical.drift_twin
    assert drift_twin is not None
    with torch.no_grad():
        still = physical.twin_layer(x, theta)
        drifted = torch.stack([drift_twin(t)(x, theta) - still for t in (0.5, -0.5)]).square().mean()
        generator = torch.Generator().manual_seed(0)
        jittered = torch.stack(
            [
                physical.twin_layer(x, theta + model.drift_sigma * torch.randn(theta.shape, generator=generator))
                - still
                for _ in range(200)
            ]
        )
    assert float(jittered.square().mean()) == pytest.approx(float(drifted), rel=0.3)
    half = fit_noise(physical, x, theta, repeats=2, drift=0.25)
    assert half.drift_sigma == pytest.approx(model.drift_sigma / 2, rel=0.1)  # small drifts map linearly
    undrifting = fit_noise(physical.with_twin(physical.twin_layer), x, theta, repeats=2, drift=0.5)
    assert undrifting.drift_sigma == 0.0  # a twin that models no drift gets no drift term
    assert PhysicalLayer.from_system(device, lambda x, t: x @ t.T).drift_twin is None  # no temperature to take


def test_nat_injects_control_and_read_noise_at_the_model_sigma() -> None:
    """On a linear twin the output variance is exactly ``σ_θ²·Σ x² + σ_read²·max(x)²``: check both terms."""
    physical = PhysicalLayer(
        system_forward=lambda x, t: x @ t.T,
        twin_layer=lambda x, t: x @ t.T,
        control_range=(-1.0, 1.0),
        stats=QueryStats,
    )
    x, theta = _batch()
    noise = NoiseModel(read_sigma=0.01, control_sigma=0.02, drift_sigma=0.015, drift_scale=0.5, fitted=False, repeats=0)
    run = nat_runner(physical, noise, torch.Generator().manual_seed(4))
    with torch.no_grad():
        draws = torch.stack([run(0, x, theta) for _ in range(2000)])
    expected = 0.025**2 * x.square().sum(1, keepdim=True) + 0.01**2 * x.amax(1, keepdim=True).square()
    measured = draws.var(dim=0).mean(dim=1, keepdim=True)
    torch.testing.assert_close(measured, expected.expand_as(measured), rtol=0.1, atol=0)
    assert torch.allclose(draws.mean(dim=0), x @ theta.T, atol=0.02)


def test_training_fits_the_noise_once_and_records_it_with_the_run(tmp_path: Path) -> None:
    iris = load_dataset("iris", seed=0)
    physical, _ = fake_physical(noise=0.01, control_noise=0.01)
    config = TrainConfig(method="nat", epochs=1, hidden=(8,), noise_repeats=6, noise_drift=0.5)
    result = train(config, physical, iris, checkpoints=tmp_path)
    assert result.noise is not None and result.noise.fitted and result.noise.repeats == 6
    assert result.setup_cost.forwards == 6
    assert result.noise.control_sigma == pytest.approx(0.01, rel=0.3)  # the nominal twin's sensitivity is close
    assert result.noise.drift_sigma > result.noise.control_sigma
    resumed = Trainer(config, fake_physical()[0], iris)
    state = load_checkpoint(tmp_path)
    assert state is not None
    resumed.load_state_dict(state)
    assert resumed.noise_model == result.noise  # the checkpoint carries the σ it trained with

    configured = TrainConfig(method="nat", epochs=1, hidden=(8,), noise_sigma=0.02, noise_control_sigma=0.03)
    fixed = train(configured, physical, iris)
    assert fixed.noise is not None and not fixed.noise.fitted and fixed.setup_cost.forwards == 0
    assert (fixed.noise.read_sigma, fixed.noise.control_sigma) == (0.02, 0.03)
