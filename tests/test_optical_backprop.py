"""Optical backprop (``obp``): the device's probe pass as the backward, and training with it."""

from __future__ import annotations

import pytest
import torch
from training_fakes import fake_physical

from labsat.datasets import Dataset, load_dataset
from labsat.physics.saturable import approximation_ratio, derivative, probe_transmission, saturation
from labsat.simulators.saturable import SaturableLayerSimulator, SaturableSimConfig
from labsat.training.config import TrainConfig
from labsat.training.loop import Trainer, train
from labsat.training.methods import MethodError, parse_method
from labsat.training.optical_backprop import OpticalBackpropError, obp_runner, optical_backprop
from labsat.training.saturable import saturable_physical_layer

NOISELESS = SaturableSimConfig(read_noise=0.0, slm_bits=None, alpha0=10.0)


def _layer(batch: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs (batch, 9) ≥ 0, weights (4, 9) in [−1, 1] and an upstream gradient (batch, 4), all float64."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 9, generator=generator, dtype=torch.float64)
    w = (2 * torch.rand(4, 9, generator=generator, dtype=torch.float64) - 1) * 0.6
    upstream = torch.randn(batch, 4, generator=generator, dtype=torch.float64)
    return x, w, upstream


def _obp_grads(
    device: SaturableLayerSimulator, x: torch.Tensor, w: torch.Tensor, upstream: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    y = optical_backprop(x, w, device.forward, device.backward)
    return torch.autograd.grad(y, (x, w), upstream)


def test_the_optical_backward_is_the_analytic_probe_gradient_on_a_noiseless_device() -> None:
    device = SaturableLayerSimulator(NOISELESS)
    x, w, upstream = _layer()
    g_x, g_w = _obp_grads(device, x, w, upstream)
    delta = probe_transmission(saturation(x @ w.T, 1.0), 10.0) * upstream
    assert torch.allclose(g_w, delta.T @ x, rtol=1e-12) and torch.allclose(g_x, delta @ w, rtol=1e-12)


def test_the_probe_rescales_the_exact_error_by_the_ratio_and_keeps_its_sign() -> None:
    device = SaturableLayerSimulator(NOISELESS)
    x, w, upstream = _layer(batch=1)
    _, g_w = _obp_grads(device, x, w, upstream)
    w_exact = w.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(device.exact_layer(x, w_exact), w_exact, upstream)
    z = x @ w.T
    ratio = approximation_ratio(saturation(z, 1.0), 10.0).T  # one factor per output row of W
    assert torch.allclose(g_w, ratio * exact, rtol=1e-10)
    assert torch.equal(g_w.sign(), exact.sign())
    assert torch.allclose(exact, (derivative(z, 10.0, 1.0) * upstream).T @ x, rtol=1e-10)


def test_the_forward_value_is_the_measured_one_and_both_passes_are_counted() -> None:
    device = SaturableLayerSimulator(SaturableSimConfig(read_noise=0.05), seed=1)
    x, w, upstream = _layer()
    y = optical_backprop(x, w.clone().requires_grad_(True), device.forward, device.backward)
    assert not torch.allclose(y, device.exact_layer(x, w), atol=1e-3)  # noisy read-out, not the model
    y.backward(upstream)
    assert device.stats.forwards == 2  # one pump, one probe


def test_obp_needs_a_device_backward() -> None:
    physical, _ = fake_physical()
    with pytest.raises(OpticalBackpropError, match="system_backward"):
        obp_runner(physical)


def test_obp_is_a_base_method_without_sat() -> None:
    method = parse_method("obp")
    assert (method.base, method.sat, method.ascent, method.weight_space) == ("obp", False, None, False)
    with pytest.raises(MethodError, match="ascent"):
        parse_method("obp", "twin")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0).subset(300, 100, seed=0)


def _config(**changes: object) -> TrainConfig:
    settings = {"method": "obp", "epochs": 3, "batch_size": 16, "hidden": (12,), "lr": 0.05, "digital_lr": 0.05}
    return TrainConfig(**{**settings, **changes})


def test_obp_training_lowers_the_loss_at_one_pump_and_one_probe_per_layer(digits: Dataset) -> None:
    device = SaturableLayerSimulator(SaturableSimConfig(alpha0=10.0), seed=0)
    result = train(_config(), saturable_physical_layer(device), digits)
    losses = result.epoch_losses()
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(step.cost.forwards == 2 * result.net.depth for step in result.steps)
    assert result.cost.forwards == device.stats.forwards


def test_obp_training_is_reproducible_from_its_seeds(digits: Dataset) -> None:
    def run(seed: int) -> list[float]:
        device = SaturableLayerSimulator(SaturableSimConfig(), seed=seed)
        trainer = Trainer(_config(seed=seed), saturable_physical_layer(device), digits)
        return [trainer.step(digits.train.x[:32], digits.train.y[:32], i).loss for i in range(4)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_initial_weights_stay_inside_the_slm_range() -> None:
    device = SaturableLayerSimulator()
    with pytest.raises(ValueError, match="init_scale"):
        saturable_physical_layer(device, init_scale=1.5)
    physical = saturable_physical_layer(device, init_scale=0.3)
    assert physical.initial_controls is not None
    start = physical.initial_controls((8, 8), torch.Generator().manual_seed(0))
    assert float(start.abs().max()) <= 0.3


def test_a_run_with_obp_is_refused_before_any_step_without_a_probe_pass() -> None:
    physical, device = fake_physical()
    with pytest.raises(OpticalBackpropError, match="system_backward"):
        Trainer(TrainConfig(method="obp"), physical, load_dataset("iris"))
    assert device.stats.forwards == 0
