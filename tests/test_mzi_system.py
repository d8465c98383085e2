"""The MZI mesh bench: its bench file, the System over the guarded simulated instruments, training hooks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from labsat.bench import Bench, open_bench
from labsat.benchfile import parse_bench
from labsat.errors import BenchFileError, LabsatError
from labsat.physics.mzi import MZIMeshModel
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.mzi import mesh_physical_layer
from labsat.training.network import PhotonicNet

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
    chip = mzi_bench.shared["mzi_chip"]
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
    physical = mesh_physical_layer(system, system.nominal_twin().layer)
    assert physical.control_shape is not None and physical.initial_controls is not None
    net = PhotonicNet((10, 10, 10), physical.control_shape)
    assert [tuple(t.shape) for t in net.photonic_parameters()] == [(90,), (90,)]
    start = physical.initial_controls((90,), torch.Generator().manual_seed(0))
    assert float(start.min()) >= 0 and float(start.max()) <= 7.5
    with pytest.raises(ValueError, match="10-mode mesh"):
        PhotonicNet((64, 10), physical.control_shape)
