"""The SAT paper's MRR setting: the reduced Lorentzian model and LeNet-5 with photonic fc2 and fc3."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labsat.datasets import load_dataset
from labsat.physics.lorentzian import GAMMA_NM, control_for, drift_shift, weight
from labsat.training.paper_mrr import (
    HybridLeNet,
    PaperConfig,
    accuracy,
    control_loss,
    flat_controls,
    image_side,
    train,
)


def test_the_reduced_model_inverts_and_drifts_as_the_paper_writes_it() -> None:
    w = torch.linspace(-0.99, 0.99, 41, dtype=torch.float64)
    assert torch.allclose(weight(control_for(w)), w, atol=1e-12)
    assert float(weight(torch.tensor(0.0))) == -1.0  # on resonance
    assert float(weight(torch.tensor(GAMMA_NM))) == pytest.approx(0.0)  # half width: half way
    assert drift_shift(-2.0) == pytest.approx(-0.16)  # 80 pm/K
    assert torch.isfinite(control_for(torch.tensor([1.0, -1.0]))).all()  # clamped, never infinite


def test_drift_moves_only_the_photonic_layers_and_is_undone_after_evaluation() -> None:
    net = HybridLeNet(8, 10, "control", seed=0).eval()
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(1))
    clean_features, clean = net.features(x), net(x)
    net.set_drift(-1.0)
    assert torch.equal(net.features(x), clean_features)  # conv1, conv2 and fc1 are digital
    assert not torch.allclose(net(x), clean)
    expected = weight(net.fc2.param + drift_shift(-1.0))
    assert torch.allclose(net.fc2.weights(), expected)
    net.set_drift(0.0)
    data = load_dataset("digits", seed=0)
    accuracy(net, data.test, -2.0)
    assert net.fc2.shift == net.fc3.shift == 0.0


def test_weight_space_layers_are_their_weights_until_the_chip_drifts() -> None:
    net = HybridLeNet(8, 10, "weight", seed=0).eval()
    h = torch.rand(4, 120, generator=torch.Generator().manual_seed(2))
    w = net.fc2.param.detach()
    assert torch.allclose(net.fc2(h), F.linear(h, w, net.fc2.bias))
    net.set_drift(0.5)
    assert torch.allclose(net.fc2.weights(), weight(control_for(w) + drift_shift(0.5)))


def test_the_front_end_fits_mnist_sized_images_and_refuses_non_square_ones() -> None:
    assert image_side(784) == 28 and image_side(64) == 8
    net = HybridLeNet(28, 10, "control", seed=0).eval()
    assert net(torch.rand(3, 784)).shape == (3, 10)
    with pytest.raises(ValueError, match="65 features are not a square"):
        image_side(65)


def test_training_is_seeded_and_sat_learns_the_digits() -> None:
    data = load_dataset("digits", seed=0).subset(400, 200, seed=0)
    config = PaperConfig("sat", epochs=8, rho=0.5, seed=3)
    first, second = train(data, config), train(data, config)
    assert torch.equal(first.fc2.param, second.fc2.param)
    assert accuracy(first, data.test) > 0.6  # chance is 0.1


def test_the_control_space_loss_is_the_networks_loss_at_its_detunings() -> None:
    data = load_dataset("digits", seed=0).subset(64, 64, seed=0)
    net = HybridLeNet(8, 10, "control", seed=0).eval()
    loss_of = control_loss(net, data.test)
    theta = flat_controls(net).requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(theta), theta)
    F.cross_entropy(net(data.test.x), data.test.y).backward()
    direct = torch.cat([net.fc2.param.grad.reshape(-1), net.fc3.param.grad.reshape(-1)])
    assert torch.allclose(grad, direct, atol=1e-6)
