"""The D2NN bench: its bench file, the simulated SLM table, the System over the guarded SLMs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from typer.testing import CliRunner

from labsat.bench import Bench, open_bench
from labsat.benchfile import BenchFile, load_bench_file, parse_bench
from labsat.cli import app
from labsat.datasets import Dataset, Split, load_dataset
from labsat.errors import BenchFileError, Halted, LimitViolation
from labsat.physics.diffractive import DiffractiveModel, Misalignment
from labsat.simulators.d2nn import D2NNChipSimulator
from labsat.systems.d2nn import D2NNSystem
from labsat.training.config import TrainConfig
from labsat.training.diffractive import diffractive_physical_layer
from labsat.training.loop import train
from labsat.truth import SIMULATED_CHIP

CONFIG = Path(__file__).parents[1] / "config" / "sim-d2nn.yaml"
IMAGING = CONFIG.with_name("sim-d2nn-imaging.yaml")
CPU = torch.device("cpu")


def small_d2nn(**simulator: Any) -> dict[str, Any]:
    """The reference bench on a 32-px grid of 8 µm pixels (the same 256 µm aperture), for fast tests."""
    data = yaml.safe_load(CONFIG.read_text())
    data["system"].update(grid=32, pixel_um=8.0)
    for mask in data["system"]["masks"]:
        data["devices"][mask]["options"]["shape"] = [32, 32]
    data["simulator"].update(simulator)
    return data


def smooth_phases(system: D2NNSystem, seed: int) -> torch.Tensor:
    """Random phase masks varying over a few pixels, like trained ones (fully random masks scatter the light away)."""
    coarse = torch.rand(system.control_shape[0], 1, 6, 6, generator=torch.Generator().manual_seed(seed))
    grid = system.control_shape[-1]
    return 2 * math.pi * F.interpolate(coarse, size=(grid, grid), mode="bilinear", align_corners=False)[:, 0]


def chip_of(bench: Bench) -> D2NNChipSimulator:
    return bench.shared[SIMULATED_CHIP]


@pytest.fixture
def noiseless() -> Iterator[Bench]:
    spec = parse_bench(small_d2nn(noise=False, detector_gain_spread=0.0), "small-d2nn.yaml")
    with open_bench(spec, torch_device=CPU) as bench:
        yield bench


def test_reference_bench_file_builds_the_d2nn_system() -> None:
    with open_bench(CONFIG, torch_device=CPU) as bench:
        system = bench.system
        assert isinstance(system, D2NNSystem)
        assert system.control_shape == (2, 128, 128) and system.control_range == (0.0, 2 * math.pi)
        assert system.optics.wavelength_nm == 532 and system.optics.pixel_um == 2 and system.optics.masks == 2
        assert [slm.name for slm in system.masks] == ["mask1", "mask2"] and system.input.shape == (8, 8)
        assert "phase SLM for mask 1" in bench.slms["mask2"].identity()
        assert system.nominal_twin().misalignment == Misalignment()


def test_imaging_bench_images_each_input_pixel_upside_down_onto_mask_one() -> None:
    """sim-d2nn-imaging.yaml: f = L = N·dx²/λ, and lens 1 images the 8×8 input (14 px a pixel) onto mask 1 (2f–2f)."""
    optics = load_bench_file(IMAGING).system.optics()
    length = optics.grid * optics.pixel_um**2 / (optics.wavelength_nm * 1e-3) / 1e3
    assert optics.focal_mm == pytest.approx(length, rel=1e-5)
    assert optics.mask_spacing_mm == pytest.approx(2 * length, rel=1e-5) and optics.image_px == 112
    model = DiffractiveModel(optics, device=CPU)
    pixels = torch.arange(optics.grid, dtype=torch.float32)
    for row, column in [(1, 2), (6, 0)]:
        x = torch.zeros(1, 64)
        x[0, 8 * row + column] = 1.0
        field, power = model.input_field(x)
        intensity = field.abs().square()[0]
        centre = [float((intensity.sum(axis) * pixels).sum() / intensity.sum()) for axis in (1, 0)]
        mirrored = [optics.grid - 1 - (8 + 14 * k + 6.5) for k in (row, column)]
        assert centre == pytest.approx(mirrored, abs=1.0)
        assert float(intensity.sum() / power) > 0.9  # the lens aperture passes nearly all of it


def test_devices_command_lists_the_slms() -> None:
    result = CliRunner().invoke(app, ["devices", "--bench", str(CONFIG), "--json"])
    assert result.exit_code == 0, result.output
    devices = {device["name"]: device for device in json.loads(result.output)["devices"]}
    assert devices["mask1"]["frame"]["shape"] == [128, 128] and devices["mask1"]["frame"]["settle_time_s"] == 0.1
    assert len(devices["camera"]["channels"]) == 10


def _edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit("system.masks", ["mask1", "mask3"]), r"system\.masks\.1: no device named 'mask3'"),
        (
            _edit("system.masks", ["mask1", "mask1"]),
            r"system\.masks\.1: device 'mask1' already serves as system\.masks\.0",
        ),
        (_edit("system.input", "camera"), r"system\.input: device 'camera' is a detector, not a slm"),
        (_edit("devices.camera.channels.count", 9), r"system\.detectors: .* 9 channels; a 2-mask D2NN needs 10"),
        (_edit("devices.mask2.options.shape", [64, 64]), r"system\.masks\.1: device 'mask2' is a 64x64 SLM.* 32x32"),
        (_edit("devices.mask1.frame_limits", {"gray": [0, 100], "safe_gray": 101}), r"devices\.mask1\.frame_limits"),
        (_edit("system.input_image_px", 40), r"system: input_image_px 40 is larger than the grid \(32 px\)"),
        (_edit("system.masks", []), r"system\.masks: List should have at least 1 item"),
    ],
)
def test_bad_bench_files_name_the_key(edit: Callable[[dict[str, Any]], None], message: str) -> None:
    data = small_d2nn()
    edit(data)
    with pytest.raises(BenchFileError, match=message):
        parse_bench(data, "small-d2nn.yaml")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit("devices.mask1.options.colour", "red"), r"devices\.mask1\.options\.colour: unknown key"),
        (_edit("devices.mask1.options.role", "heaters"), r"devices\.mask1\.options\.role: .*needs role 'mask'"),
        (_edit("devices.mask1.options.settle_time_s", -1), r"devices\.mask1\.options\.settle_time_s"),
        (_edit("simulator.lut_gama", 1.0), r"simulator\.lut_gama: unknown key"),
    ],
)
def test_bad_simulated_devices_name_the_key(edit: Callable[[dict[str, Any]], None], message: str) -> None:
    data = small_d2nn()
    edit(data)
    with pytest.raises(BenchFileError, match=message):
        open_bench(parse_bench(data, "small-d2nn.yaml"), torch_device=CPU)


def test_forward_equals_the_model_at_the_phases_the_slms_really_show(noiseless: Bench) -> None:
    system, chip = noiseless.system, chip_of(noiseless)
    assert isinstance(system, D2NNSystem)
    controls = smooth_phases(system, 0)
    x = torch.rand(12, 64, generator=torch.Generator().manual_seed(1))
    measured = system.forward(x, controls)
    shown = torch.round(x / x.amax(1, keepdim=True) * 255) / 255  # the 8-bit input frames
    truth = chip.model.layer(shown, chip.mask_phases)
    # The true LUT (not the nominal one the System used) sets the shown phases; ADC steps remain.
    assert measured.shape == (12, 10)
    assert (measured - truth).abs().max() < 5e-3 * truth.abs().max()
    expected_gray = system.to_gray(controls)
    assert torch.equal(
        chip.mask_phases,
        torch.stack([lut.to_phase(g) for lut, g in zip(chip.luts, expected_gray, strict=True)]).float(),
    )
    assert system.stats.forwards == 1 and system.stats.programs == 1 and system.stats.samples == 12


def test_streamed_batch_equals_the_device_level_path() -> None:
    spec = parse_bench(small_d2nn(noise=False), "small-d2nn.yaml")
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(2))
    outputs, elapsed = [], []
    for streamed in (True, False):
        with open_bench(spec, torch_device=CPU) as bench:
            if not streamed:
                bench.system.streamer = None  # each input frame through the guarded input SLM, then one camera read
            outputs.append(bench.system.forward(x, smooth_phases(bench.system, 3)))
            elapsed.append(bench.system.stats.bench_time_s)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-7)
    assert elapsed[1] > elapsed[0]  # a frame at a time waits for the input SLM and the bus


def test_the_simulated_bench_is_reproducible_from_its_seed() -> None:
    spec = parse_bench(small_d2nn(), "small-d2nn.yaml")
    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(4))
    runs = []
    for _ in range(2):
        with open_bench(spec, torch_device=CPU) as bench:
            runs.append(bench.system.forward(x, smooth_phases(bench.system, 5)))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_misalignment_moves_the_readings(noiseless: Bench) -> None:
    system, chip = noiseless.system, chip_of(noiseless)
    x = torch.rand(3, 64, generator=torch.Generator().manual_seed(6))
    controls = smooth_phases(system, 7)
    aligned = system.forward(x, controls)
    chip.set_misalignment(Misalignment(rotation_deg=2.0))
    assert (system.forward(x, controls) - aligned).abs().max() > 1e-3 * aligned.abs().max()


def test_guard_refuses_bad_frames_from_any_caller(noiseless: Bench) -> None:
    chip = chip_of(noiseless)
    before = chip.mask_phases
    with pytest.raises(LimitViolation, match=r"mask1\.pixel \(0, 0\) = 300 refused"):
        noiseless.slms["mask1"].show(np.full((32, 32), 300))
    with pytest.raises(LimitViolation, match=r"input\.pixel"):
        noiseless.system.measure_volts(torch.full((2, 8, 8), 256))
    assert torch.equal(chip.mask_phases, before)


def test_safe_state_shows_the_safe_frames() -> None:
    data = small_d2nn(noise=False)
    data["devices"]["mask1"]["frame_limits"] = {"gray": [0, 255], "safe_gray": 12}
    with open_bench(parse_bench(data, "small-d2nn.yaml"), torch_device=CPU) as bench:
        system, chip = bench.system, chip_of(bench)
        system.forward(torch.rand(2, 64), smooth_phases(system, 8))
        bench.safe_state()
        assert (bench.slms["mask1"].frame() == 12).all() and (bench.slms["input"].frame() == 0).all()
        torch.testing.assert_close(chip.mask_phases[0], chip.luts[0].to_phase(torch.full((32, 32), 12)).float())


def test_a_halted_bench_refuses_the_layer() -> None:
    spec: BenchFile = parse_bench(small_d2nn(noise=False), "small-d2nn.yaml")
    with open_bench(spec, torch_device=CPU) as bench:
        bench.guard.halt("emergency stop")
        with pytest.raises(Halted, match="emergency stop"):
            bench.system.forward(torch.rand(2, 64), smooth_phases(bench.system, 9))
        assert all((slm.frame() == 0).all() for slm in bench.slms.values())


def test_inputs_are_checked(noiseless: Bench) -> None:
    controls = torch.zeros(noiseless.system.control_shape)
    with pytest.raises(ValueError, match=r"inputs must be \(B, 64\)"):
        noiseless.system.forward(torch.rand(2, 63), controls)
    with pytest.raises(ValueError, match="non-negative"):
        noiseless.system.forward(-torch.rand(2, 64), controls)
    with pytest.raises(ValueError, match=r"controls must be \(2, 32, 32\)"):
        noiseless.system.forward(torch.rand(2, 64), deepcopy(controls)[:1])


@pytest.mark.parametrize(("method", "forwards_per_step"), [("pat", 1), ("pat+sat", 2), ("dat", 1), ("nat", 0)])
def test_device_methods_train_the_d2nn_through_the_guarded_slms(
    noiseless: Bench, method: str, forwards_per_step: int
) -> None:
    """The device methods run unchanged on the D2NN System: masks shown through the guard, the twin's VJP
    backward (PAT, PAT+SAT), DAT's correctors fitted to the measured powers, NAT's noise fitted on the device."""
    system = noiseless.system
    assert isinstance(system, D2NNSystem)
    physical = diffractive_physical_layer(system.nominal_twin(), system.forward, stats=lambda: system.stats.copy())
    digits = load_dataset("digits")
    subset = Dataset("digits-head", Split(digits.train.x[:128], digits.train.y[:128]), digits.test, 10)
    config = TrainConfig(method=method, epochs=3, batch_size=32, hidden=(), lr=0.1, rho=0.05, seed=0)
    result = train(config, physical, subset)
    losses = result.epoch_losses()
    assert losses[-1] < losses[0]
    noise_fit = config.noise_repeats if method == "nat" else 0  # NAT measures its noise once, before training
    assert result.cost.forwards == 3 * 4 * forwards_per_step + noise_fit
    assert result.cost.bench_time_s > 0  # frames were shown and settled on the bench clock
