"""The MZI mesh bench: its bench file, the System over the guarded simulated instruments, training hooks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from labsat.bench import Bench, open_bench
from labsat.benchfile import parse_bench
from labsat.datasets import Dataset, Split, load_dataset
from labsat.errors import BenchFileError, LabsatError
from labsat.physics.mzi import MZIMeshModel
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.config import TrainConfig
from labsat.training.loop import train
from labsat.training.mzi import mesh_physical_layer
from labsat.training.network import PhotonicNet
from labsat.truth import SIMULATED_CHIP

CONFIG = Path(__file__).parents[1] / "config" / "sim-mzi.yaml"


@pytest.fixture
def mzi_data() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture
def mzi_bench() -> Iterator[Bench]:
    with open_bench(CONFIG, torch_device=torch.device("cpu")) as bench:
        yield bench


def test_config_validates_and_builds_the_mesh_system(mzi_bench: Bench) -> None:
    system = mzi_bench.system
    assert isinstance(system, MZIMeshSystem)
    assert system.control_shape == (90,) and system.control_range == (0.0, 7.5)
    assert "10-mode MZI mesh" in mzi_bench.source("heaters").identity()


def test_wrong_channel_count_names_the_role(mzi_data: dict[str, Any]) -> None:
    mzi_data["devices"]["heaters"]["channels"]["count"] = 45
    with pytest.raises(BenchFileError, match=r"system\.heaters.*10-mode mesh needs 90"):
        parse_bench(mzi_data, "sim-mzi.yaml")


def test_unknown_simulator_key_is_refused(mzi_data: dict[str, Any]) -> None:
    mzi_data["simulator"]["sigma_phase"] = 0.1
    with pytest.raises(BenchFileError, match=r"simulator\.sigma_phase"):
        open_bench(parse_bench(mzi_data, "sim-mzi.yaml"))


def test_system_forward_equals_the_chip_physics_within_noise(mzi_bench: Bench) -> None:
    chip = mzi_bench.shared[SIMULATED_CHIP]
    controls = torch.rand(90, generator=torch.Generator().manual_seed(0)) * 7
    x = torch.rand(32, 8, generator=torch.Generator().manual_seed(1))  # fewer inputs than modes: the rest dark
    measured = mzi_bench.system.forward(x, controls)
    truth = MZIMeshModel(chip.truth).layer(x.double(), chip.heater_volts).float()
    # Nominal readout against the chip's spreads (V_π 2 %, gain 2 %) and noise: a few % of full scale.
    assert measured.shape == (32, 10)
    assert (measured - truth).abs().max() < 0.05 * x.square().sum(1).max()
    assert mzi_bench.system.stats.forwards == 1 and mzi_bench.system.stats.programs == 1


def test_device_level_path_agrees_with_the_streamed_batch(mzi_data: dict[str, Any]) -> None:
    mzi_data["simulator"]["noise"] = False
    spec = parse_bench(mzi_data, "sim-mzi.yaml")
    controls = torch.rand(90, generator=torch.Generator().manual_seed(2)) * 7
    x = torch.rand(4, 10, generator=torch.Generator().manual_seed(3))
    outputs = []
    for streamed in (True, False):
        with open_bench(spec, torch_device=torch.device("cpu")) as bench:
            if not streamed:
                bench.system.streamer = None  # sample by sample through the modulator and detector instruments
            outputs.append(bench.system.forward(x, controls))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)


def test_guard_refuses_controls_outside_the_range(mzi_bench: Bench) -> None:
    heaters = mzi_bench.source("heaters")
    before = heaters.values()
    with pytest.raises(LabsatError):
        mzi_bench.system.forward(torch.rand(2, 10), torch.full((90,), 7.6))
    with pytest.raises(LabsatError):  # each heater's own limits pass, the bench budget (3 W) does not
        mzi_bench.system.forward(torch.rand(2, 10), torch.full((90,), 7.4))
    assert (heaters.values() == before).all()


def test_photonic_net_takes_the_mesh_control_shape(mzi_bench: Bench) -> None:
    system = mzi_bench.system
    physical = mesh_physical_layer(system, system.nominal_twin())
    assert physical.control_shape is not None and physical.initial_controls is not None
    net = PhotonicNet((10, 10, 10), physical.control_shape)
    assert [tuple(t.shape) for t in net.photonic_parameters()] == [(90,), (90,)]
    start = physical.initial_controls((90,), torch.Generator().manual_seed(0))
    assert float(start.min()) >= 0 and float(start.max()) < 2 * math.pi  # phases, not volts
    with pytest.raises(ValueError, match="10-mode mesh"):
        PhotonicNet((64, 10), physical.control_shape)
    assert [tuple(t.shape) for t in PhotonicNet((64, 10), physical.control_shape, encoder=10).theta] == [(90,)]


def test_phase_controls_drive_the_design_chip_like_the_design_twin(mzi_data: dict[str, Any]) -> None:
    """Phase shifts become heater volts through the twin's heater model; on an error-free chip they agree."""
    mzi_data["simulator"].update(noise=False, sigma_bs=0.0, sigma_ph=0.0, p_pi_spread=0.0, resistance_spread=0.0)
    mzi_data["simulator"].update(modulator_v_pi_spread=0.0, detector_gain_spread=0.0)
    with open_bench(parse_bench(mzi_data, "sim-mzi.yaml"), torch_device=torch.device("cpu")) as bench:
        twin = bench.system.nominal_twin()
        physical = mesh_physical_layer(bench.system, twin)
        shifts = physical.initial_controls((90,), torch.Generator().manual_seed(4))  # type: ignore[misc]
        x = torch.rand(16, 10, generator=torch.Generator().manual_seed(5))
        measured = physical.system_forward(x, shifts + 2 * math.pi)  # a phase is periodic: one turn more is the same
        expected = physical.twin_layer(x, shifts)
        assert torch.allclose(measured, expected, atol=2e-3 * float(x.square().sum(1).max()))
        heaters = bench.source("heaters").values()
        assert heaters.min() >= 0 and heaters.max() <= 7.5


def test_mesh_layer_reads_out_its_first_modes(mzi_bench: Bench) -> None:
    system = mzi_bench.system
    physical = mesh_physical_layer(system, system.nominal_twin(), outputs=4)
    assert physical.control_shape is not None
    assert physical.control_shape(4, 10) == (90,)
    with pytest.raises(ValueError, match="first 4 modes"):
        physical.control_shape(10, 10)
    shifts = torch.zeros(90)
    x = torch.rand(3, 10, generator=torch.Generator().manual_seed(6))
    assert physical.twin_layer(x, shifts).shape == (3, 4) and physical.system_forward(x, shifts).shape == (3, 4)
    with pytest.raises(ValueError, match="1 to 10 outputs"):
        mesh_physical_layer(system, system.nominal_twin(), outputs=11)


@pytest.mark.parametrize("method", ["pat", "pat+sat", "nat", "dat"])
def test_device_methods_train_an_encoded_mesh_network(mzi_bench: Bench, method: str) -> None:
    """Every device-facing method runs on the mesh with a digital encoder, and lowers the loss."""
    system = mzi_bench.system
    physical = mesh_physical_layer(system, system.nominal_twin())
    dataset = load_dataset("digits")
    subset = Dataset("digits-head", Split(dataset.train.x[:256], dataset.train.y[:256]), dataset.test, 10)
    config = TrainConfig(method=method, epochs=3, batch_size=64, hidden=(), encoder=10, lr=0.05, rho=0.5, seed=0)
    result = train(config, physical, subset)
    losses = result.epoch_losses()
    assert losses[-1] < losses[0]
    assert result.cost.forwards > 0
    assert result.net.encoder is not None and result.net.layer_sizes == (10, 10)


def test_a_modulator_beyond_its_range_saturates_instead_of_being_refused(mzi_bench: Bench) -> None:
    """A readout whose V_π (2.5 V) lies above the modulators' 2.2 V top drives them at 2.2 V, never past it."""
    system = mzi_bench.system
    system.readout.modulator_v_pi = torch.full_like(system.readout.modulator_v_pi, 2.5)
    y = system.forward(torch.ones(1, 10), torch.zeros(90))
    assert torch.isfinite(y).all()
    assert float(mzi_bench.source("modulators").values().max()) <= 2.2
