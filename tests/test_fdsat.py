"""FD-SAT: the adversarial disturbance step, its place in the training loop, and D2NN training with it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from labsat.datasets import load_dataset
from labsat.physics.diffractive import DiffractiveModel, DiffractiveOptics, Misalignment
from labsat.physics.slm import PHASE_RANGE
from labsat.training.checkpoint import load_checkpoint
from labsat.training.config import TrainConfig
from labsat.training.diffractive import diffractive_physical_layer
from labsat.training.evaluate import predict
from labsat.training.fdsat import adversarial_offset
from labsat.training.loop import Trainer, train
from labsat.training.methods import MethodError
from labsat.training.network import PhotonicNet
from labsat.training.runners import device_runner, twin_runner

OPTICS = DiffractiveOptics().resized(32)
"""The paper's D2NN shrunk to a 32-px grid (same Fresnel numbers): fast enough for tests."""


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0).subset(128, 64, seed=0)


@pytest.fixture(scope="module")
def twin() -> DiffractiveModel:
    return DiffractiveModel(OPTICS, device="cpu")


@pytest.mark.parametrize("rising", [True, False])
def test_offset_follows_the_loss_uphill(rising: bool) -> None:
    def loss_at(offset: float) -> float:
        return 1.0 + (2.0 if rising else -2.0) * offset

    step = adversarial_offset(loss_at, loss_at(0.0), delta_max=0.5, gain=0.1, generator=torch.Generator())
    assert 0 < step.delta <= 0.5
    assert step.slope == pytest.approx(2.0 if rising else -2.0)
    assert step.offset == pytest.approx(step.delta + 0.1 * step.slope)


@pytest.mark.parametrize("two_sided", [False, True])
def test_two_sided_steps_turn_either_way_and_still_climb(two_sided: bool) -> None:
    def loss_at(offset: float) -> float:  # rises both ways from 0: uphill is away from the present offset
        return offset**2

    generator = torch.Generator().manual_seed(0)
    steps = [adversarial_offset(loss_at, 0.0, 1.0, 0.1, generator, two_sided) for _ in range(200)]
    negative = sum(step.delta < 0 for step in steps)
    assert all(0 < abs(step.delta) <= 1.0 for step in steps)
    assert (60 < negative < 140) if two_sided else negative == 0
    assert all(step.offset * step.delta > step.delta**2 for step in steps)  # η·ĝ pushes further out, either way


def test_offsets_are_seeded() -> None:
    def draw(seed: int) -> list[float]:
        generator = torch.Generator().manual_seed(seed)
        return [adversarial_offset(lambda o: o, 0.0, 1.0, 0.0, generator).delta for _ in range(5)]

    assert draw(3) == draw(3) != draw(4)


def test_disturbed_layer_moves_the_twin_and_a_model_device(twin: DiffractiveModel, digits) -> None:
    physical = diffractive_physical_layer(twin)
    assert physical.control_range == PHASE_RANGE
    moved = physical.disturbed({"rotation": 0.5}).disturbed({"rotation": 0.5, "shift_x": 1.0})
    target = twin.with_misalignment(Misalignment(rotation_deg=1.0, shift_px=(1.0, 0.0)))
    phases = 2 * math.pi * torch.rand(OPTICS.control_shape, generator=torch.Generator().manual_seed(0))
    x = digits.test.x[:4]
    for forward in (moved.twin_layer, moved.system_forward):
        torch.testing.assert_close(forward(x, phases), target.layer(x, phases))


def test_a_device_that_cannot_move_says_so(twin: DiffractiveModel, digits) -> None:
    physical = diffractive_physical_layer(twin, device=twin.layer)
    moved = physical.disturbed({"rotation": 1.0})
    with pytest.raises(NotImplementedError, match="device_at"):
        moved.system_forward(digits.test.x[:2], torch.zeros(OPTICS.control_shape))


def test_network_has_one_optical_layer_of_mask_phases(twin: DiffractiveModel) -> None:
    physical = diffractive_physical_layer(twin)
    net = PhotonicNet((64, 10), physical.control_shape)
    assert [tuple(theta.shape) for theta in net.photonic_parameters()] == [(2, 32, 32)]
    with pytest.raises(ValueError, match="10 detector outputs"):
        PhotonicNet((64, 16, 10), physical.control_shape)


CONFIG = {
    "method": "sat",
    "epochs": 2,
    "batch_size": 32,
    "hidden": (),
    "lr": 0.2,
    "rho": 0.1,
    "theta_ref": 0.0,
    "eta": 0.01,
    "fd_disturbance": "rotation",
    "fd_delta_max": 1.0,
    "fd_gain": 0.03,
}


def loss_at(net: PhotonicNet, twin: DiffractiveModel, rotation_deg: float, split) -> float:
    model = twin.with_misalignment(Misalignment(rotation_deg=rotation_deg))
    logits = predict(net, split.x, twin_runner(diffractive_physical_layer(model)))
    return float(torch.nn.functional.cross_entropy(logits, split.y))


@pytest.mark.parametrize("two_sided", [False, True])
def test_fd_sat_probes_uphill_and_trains_at_a_misalignment(twin: DiffractiveModel, digits, two_sided: bool) -> None:
    physical = diffractive_physical_layer(twin)
    trainer = Trainer(TrainConfig(**CONFIG, fd_two_sided=two_sided), physical, digits)
    before = loss_at(trainer.net, twin, 1.0, digits.train)
    offsets = []
    for epoch in range(CONFIG["epochs"]):
        trainer.run_epoch(lambda record: offsets.append(trainer.fd_sat.last))
        assert trainer.epoch == epoch + 1
    assert all(0 < abs(o.delta) <= 1.0 and o.offset == pytest.approx(o.delta + 0.03 * o.slope) for o in offsets)
    assert any(o.delta < 0 for o in offsets) == two_sided
    assert loss_at(trainer.net, twin, 1.0, digits.train) < 0.9 * before


def test_fd_sat_runs_are_reproducible_and_resume_exactly(twin: DiffractiveModel, digits, tmp_path: Path) -> None:
    data = digits.subset(32, 10, 0)
    whole_config = TrainConfig(**{**CONFIG, "epochs": 2})
    whole, again = (train(whole_config, diffractive_physical_layer(twin), data) for _ in range(2))
    assert [s.loss for s in whole.steps] == [s.loss for s in again.steps]

    first = TrainConfig(**{**CONFIG, "epochs": 1})
    train(first, diffractive_physical_layer(twin), data, checkpoints=tmp_path)
    saved = load_checkpoint(tmp_path)
    saved["settings"] = whole_config.settings()  # the same run with a longer plan (see test_training)
    torch.save(saved, tmp_path / "checkpoint.pt")
    resumed = train(whole_config, diffractive_physical_layer(twin), data, checkpoints=tmp_path, resume=True)
    assert [s.loss for s in resumed.steps] == [s.loss for s in whole.steps]
    assert torch.equal(resumed.net.theta[0], whole.net.theta[0])


def test_pat_with_fd_sat_measures_on_the_moved_device(twin: DiffractiveModel, digits) -> None:
    """PAT+SAT: the probe and the descent forward run on the device, which a model realises exactly."""
    calls: list[float] = []

    def device_at(offsets: dict[str, float]):
        calls.append(offsets["rotation"])
        return twin.with_misalignment(Misalignment(rotation_deg=offsets["rotation"])).layer

    physical = diffractive_physical_layer(twin, device=twin.layer, device_at=device_at)
    trainer = Trainer(TrainConfig(**{**CONFIG, "method": "pat+sat"}), physical, digits)
    trainer.step(digits.train.x[:16], digits.train.y[:16], 0)
    last = trainer.fd_sat.last
    assert calls[-2:] == [pytest.approx(last.delta), pytest.approx(last.offset)]  # probe, then the descent
    assert device_runner(physical)(0, digits.train.x[:2], trainer.net.theta[0]).shape == (2, 10)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"method": "bp-control"}, MethodError),
        ({"method": "dat+sat"}, MethodError),
        ({"fd_delta_max": 0.0}, ValueError),  # refused by the settings themselves
        ({"fd_disturbance": "tilt"}, ValueError),
    ],
)
def test_fd_sat_refuses_what_it_cannot_do(twin: DiffractiveModel, digits, changes, error) -> None:
    with pytest.raises(error):
        Trainer(TrainConfig(**{**CONFIG, **changes}), diffractive_physical_layer(twin), digits)


def test_a_new_twin_drops_the_old_disturbance_model() -> None:
    """``with_twin`` must not leave FD-SAT moving the twin it replaced."""
    twin = DiffractiveModel(DiffractiveOptics().resized(16))
    physical = diffractive_physical_layer(twin)
    assert physical.disturbed is not None
    assert physical.with_twin(twin.layer).disturbed is None
