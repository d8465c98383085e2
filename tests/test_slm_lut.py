"""SLM LUT calibration on the simulated D2NN: the fitted LUTs against the simulator's true ones."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from test_d2nn_system import CPU, chip_of, small_d2nn, smooth_phases

from labsat.bench import Bench, open_bench
from labsat.benchfile import parse_bench
from labsat.calibration.slm_lut import LUTCalibration, calibrate_slm_luts
from labsat.physics.diffractive import DiffractiveModel
from labsat.physics.slm import PhaseLUT, wrap
from labsat.systems.d2nn import D2NNSystem

STEP = 3
"""Every third gray level measured (86 per mask and orientation), the rest interpolated."""


@pytest.fixture(scope="module")
def calibrated() -> Iterator[tuple[Bench, LUTCalibration]]:
    """A noisy simulated bench (flicker, detector noise) and its LUT calibration, shared by the tests.

    The detectors' gains equal the nominal readout here: their spread is another calibration's business and
    would hide the LUT's share of the System's error.
    """
    spec = parse_bench(small_d2nn(detector_gain_spread=0.0), "small-d2nn.yaml")
    with open_bench(spec, torch_device=CPU) as bench:
        assert isinstance(bench.system, D2NNSystem)
        yield bench, calibrate_slm_luts(bench.system, step=STEP, template_points=128)


def test_fitted_luts_match_the_true_ones(calibrated: tuple[Bench, LUTCalibration]) -> None:
    bench, result = calibrated
    nominal = bench.system.luts
    for fitted, true, before in zip(result.luts, chip_of(bench).luts, nominal, strict=True):
        assert fitted.rms_difference(true) < 0.05  # measured: ≈ 0.01 rad (≈ 0.002 rad on the 128-px reference)
        assert before.rms_difference(true) > 0.1
    assert all(residual < 0.1 for residual in result.residual)
    levels = len({*range(0, 256, STEP), 255})
    assert result.cost.programs == 2 * 2 * levels  # two masks, two split orientations


def test_calibrated_system_agrees_better_with_the_true_physics(calibrated: tuple[Bench, LUTCalibration]) -> None:
    """The masks the SLMs show come closer to the controls, and so do the outputs (above the noise floor)."""
    bench, result = calibrated
    system, chip = bench.system, chip_of(bench)
    assert isinstance(system, D2NNSystem)
    truth = DiffractiveModel(system.optics, chip.misalignment, CPU)
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(10))
    nominal = system.luts
    phase_error: dict[str, list[float]] = {"nominal": [], "calibrated": []}
    output_error: dict[str, list[float]] = {"nominal": [], "calibrated": []}
    for seed in (11, 12, 13):
        controls = smooth_phases(system, seed)
        wanted = truth.layer(x, controls)
        for name, luts in (("nominal", nominal), ("calibrated", result.luts)):
            system.use_luts(luts)
            measured = system.forward(x, controls)
            phase_error[name].append(float(wrap(chip.mask_phases - controls).square().mean().sqrt()))
            output_error[name].append(float((measured - wanted).square().mean().sqrt()))
    assert max(phase_error["calibrated"]) < 0.05 < 0.1 < min(phase_error["nominal"])  # flicker 0.02, 8 bits 0.007
    assert sum(output_error["calibrated"]) < 0.8 * sum(output_error["nominal"])


def test_phase_lut_inverse_takes_the_nearest_level_on_the_circle() -> None:
    linear = PhaseLUT.linear()
    gray = torch.arange(256)
    assert torch.equal(linear.to_gray(linear.to_phase(gray)).long(), gray)
    assert int(linear.to_gray(torch.tensor(-0.01))) == 0 and int(linear.to_gray(torch.tensor(2 * math.pi - 0.01))) == 0
    short = PhaseLUT.power_law(1.5 * math.pi, 1.0)
    assert int(short.to_gray(torch.tensor(1.6 * math.pi))) == 255  # unreachable: the nearer end
    assert int(short.to_gray(torch.tensor(1.9 * math.pi))) == 0
    assert short.rms_difference(PhaseLUT(short.phase + 1.0)) < 1e-12  # a common offset is not observable
