"""PAT, DAT and NAT: what each gradient source computes and how many device forwards it spends."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from training_fakes import fake_physical

from labsat.datasets import load_dataset
from labsat.training.config import TrainConfig
from labsat.training.dat import DualAdaptive
from labsat.training.loop import Trainer
from labsat.training.nat import fit_read_noise, nat_runner
from labsat.training.pat import physics_aware


def _controls(shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return 1.5 + torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_pat_forward_is_the_device_and_backward_the_twin_vjp_at_the_measured_input() -> None:
    physical, _device = fake_physical(noise=0.01)
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    theta = _controls((9, 12)).requires_grad_(True)
    y = physics_aware(x, theta, physical.system_forward, physical.twin_layer)
    modelled = physical.twin_layer(x, theta)
    assert not torch.allclose(y, modelled, atol=1e-3)  # the forward value is the chip's, not the twin's
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    g_x, g_theta = torch.autograd.grad(y, (x, theta), upstream)
    vjp_x, vjp_theta = torch.autograd.grad(modelled, (x, theta), upstream)
    assert torch.allclose(g_x, vjp_x) and torch.allclose(g_theta, vjp_theta)


def test_pat_backward_skips_gradients_nobody_asked_for() -> None:
    physical, _ = fake_physical()
    theta = _controls((3, 4)).requires_grad_(True)
    y = physics_aware(torch.rand(2, 4), theta, physical.system_forward, physical.twin_layer)
    (grad,) = torch.autograd.grad(y.sum(), theta)
    assert grad.shape == (3, 4)


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


@pytest.mark.parametrize(
    ("method", "ascent", "forwards_per_layer"),
    [
        ("pat", None, 1),
        ("dat", None, 1),
        ("pat+sat", None, 2),
        ("pat+sat", "twin", 1),
        ("dat+sat", None, 2),
        ("sat", None, 0),
        ("bp-control", None, 0),
    ],
)
def test_device_forwards_per_step(iris, method: str, ascent: str | None, forwards_per_layer: int) -> None:
    physical, device = fake_physical()
    trainer = Trainer(TrainConfig(method=method, ascent=ascent, hidden=(8,)), physical, iris)
    x, y = iris.train.x[:16], iris.train.y[:16]
    record = trainer.step(x, y, 0)
    assert record.cost.forwards == forwards_per_layer * trainer.net.depth == device.stats.forwards
    assert record.cost.samples == forwards_per_layer * trainer.net.depth * 16  # one tile per iris layer


def test_dat_fits_its_corrector_to_the_one_measurement_it_backpropagates_through(iris) -> None:
    physical, device = fake_physical()
    trainer = Trainer(TrainConfig(method="dat", hidden=(8,), dat_fit_steps=20), physical, iris)
    dat = trainer.dat
    assert isinstance(dat, DualAdaptive)
    seen: list[tuple] = []
    fit = dat.fit
    dat.fit = lambda measurements: seen.extend(measurements) or fit(measurements)  # type: ignore[method-assign]
    x, y = iris.train.x[:32], iris.train.y[:32]
    x0 = x.clone()
    trainer.step(x, y, 0)
    assert device.stats.forwards == trainer.net.depth  # one measurement per layer for (a) and (b)
    assert [index for index, *_ in seen] == [0, 1]
    assert torch.equal(seen[0][1], x0)  # layer 0 was fitted on the batch's own inputs
    # After the fit, the corrected twin is closer to the measurement than the bare twin.
    index, layer_x, theta, measured = seen[0]
    with torch.no_grad():
        bare = F.mse_loss(physical.twin_layer(layer_x, theta), measured)
        corrected = F.mse_loss(dat.corrected(index)(layer_x, theta), measured)
    assert corrected < bare


def test_read_noise_fit_recovers_the_device_sigma_and_nat_injects_that_much() -> None:
    physical, device = fake_physical(noise=0.02, twin="truth")
    x = torch.rand(64, 16, generator=torch.Generator().manual_seed(3))
    theta = _controls((8, 16))
    sigma = fit_read_noise(physical, x, theta, repeats=16)
    assert device.stats.forwards == 16
    assert sigma == pytest.approx(0.02, rel=0.1)

    run = nat_runner(physical, sigma, torch.Generator().manual_seed(4))
    with torch.no_grad():
        draws = torch.stack([run(0, x, theta) for _ in range(200)])
    spread = (draws.std(dim=0) / x.amax(dim=1, keepdim=True)).mean()
    assert float(spread) == pytest.approx(sigma, rel=0.05)
    assert torch.allclose(draws.mean(dim=0), physical.twin_layer(x, theta), atol=5 * sigma)
