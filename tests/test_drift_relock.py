"""A bank's drift as a disturbance: FD-SAT trains against it through the twin, and a pilot measurement re-locks it."""

from __future__ import annotations

import pytest
import torch
from training_fakes import fake_physical

from labsat.bench import builtin_bench_path, open_bench
from labsat.datasets import load_dataset
from labsat.errors import LabsatError
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy
from labsat.training.loop import Trainer, train
from labsat.training.physical import DRIFT
from labsat.training.relock import estimate_drift, relock
from labsat.training.runners import device_runner
from labsat.training.session import bench_network


def test_the_drift_disturbance_moves_the_twin_only_and_refuses_other_names() -> None:
    physical, _ = fake_physical(twin="truth")
    drifting = physical.drifting()
    assert drifting.disturbed is not None and drifting.drift_twin is not None
    x = torch.rand(4, 8, generator=torch.Generator().manual_seed(0))
    theta = torch.full((6, 8), 1.5)
    moved = drifting.disturbed({DRIFT: -1.0})
    assert torch.allclose(moved.twin_layer(x, theta), drifting.drift_twin(-1.0)(x, theta))
    assert moved.system_forward is drifting.system_forward  # nothing on a bench sets the chip's temperature
    with pytest.raises(ValueError, match="unknown disturbance 'rotation' of a drifting layer"):
        drifting.disturbed({"rotation": 1.0})
    with pytest.raises(ValueError, match="models no drift"):
        physical.with_twin(physical.twin_layer).drifting()


def test_fd_sat_trains_against_drift_of_either_sign_without_querying_the_device() -> None:
    iris = load_dataset("iris", seed=0)
    physical, _ = fake_physical(twin="truth")
    config = TrainConfig(
        method="sat", epochs=1, hidden=(8,), fd_disturbance=DRIFT, fd_delta_max=2.0, fd_two_sided=True, seed=1
    )
    trainer = Trainer(config, physical.drifting(), iris)
    assert trainer.fd_sat is not None
    offsets = []
    for index in range(6):
        trainer.step(iris.train.x[:16], iris.train.y[:16], index)
        assert trainer.fd_sat.last is not None
        offsets.append(trainer.fd_sat.last.delta)
    assert any(d < 0 for d in offsets) and any(d > 0 for d in offsets) and max(map(abs, offsets)) <= 2.0
    assert physical.stats().forwards == 0  # in silico: the drift is probed through the twin


def test_a_pilot_measurement_finds_the_drift_and_the_relocked_controls_undo_it() -> None:
    iris = load_dataset("iris", seed=0)
    physical, device = fake_physical(twin="truth")
    net = train(TrainConfig(method="bp-control", epochs=30, hidden=(8,), seed=0), physical, iris).net
    clean = accuracy(net, iris.test, device_runner(physical))
    device.delta_t_k = -2.0
    drifted = accuracy(net, iris.test, device_runner(physical))
    before = physical.stats()
    result = relock(net, physical, iris.train.x[:16])
    assert result.delta_t_k == pytest.approx(-2.0, abs=0.02)
    assert result.pilot.forwards == 1 and physical.stats().since(before).forwards == 1  # the only device query
    low, high = physical.control_range
    assert all(bool(((c >= low) & (c <= high)).all()) for c in result.controls)
    relocked = accuracy(result.applied_to(net), iris.test, device_runner(physical))
    assert drifted < clean - 0.1  # the drift hurt,
    assert relocked >= clean - 0.05  # and the re-lock undid it
    device.delta_t_k = 0.0
    estimated, _, _ = estimate_drift(physical, net.theta[0].detach(), iris.train.x[:16])
    assert abs(estimated) < 0.02  # no drift: none found
    with pytest.raises(ValueError, match="models no drift"):
        relock(net, physical.with_twin(physical.twin_layer), iris.train.x[:16])


def test_a_bank_takes_fd_sat_against_drift_in_silico_only() -> None:
    digits = load_dataset("digits", seed=0)
    with open_bench(builtin_bench_path()) as bench:
        fd = {"fd_disturbance": DRIFT, "fd_two_sided": True}
        assert bench_network(bench, TrainConfig(method="sat", **fd), digits).fd_disturbance == DRIFT
        with pytest.raises(LabsatError, match=r"FD-SAT with pat\+sat \(ascent pat\) measures the bank at another"):
            bench_network(bench, TrainConfig(method="pat+sat", **fd), digits)
        with pytest.raises(LabsatError, match="whose disturbances are drift"):
            bench_network(bench, TrainConfig(method="sat", fd_disturbance="rotation"), digits)
