"""A full calibration of the default simulated bench (seed 7, default noise) against the simulator's truth.

Sweeps see resonances only as heater power (``V²/R`` against ``Δλ/η``), so positions and widths are
compared where they are observable, in heater V² at the peak: the same ratio to the FWHM as in nm.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from labsat.bench import Bench, builtin_bench_path, open_bench
from labsat.calibration import CalibrationOptions, CalibrationRecord, calibrate, compare
from labsat.calibration.twins import twin_for_bench
from labsat.simulators.mrr import MRRChipSimulator
from labsat.store import Store
from labsat.truth import SIMULATED_CHIP
from labsat.twin import Twin, apply_calibration

OPTIONS = CalibrationOptions(sweep_points=48, heater_maps=40)
"""Half the default sweep resolution and fit maps, to keep the test fast; the accuracy bounds still hold."""


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bench, Store, CalibrationRecord]]:
    folder: Path = tmp_path_factory.mktemp("calibration")
    store = Store(folder)
    with open_bench(builtin_bench_path(), torch_device=torch.device("cpu")) as bench:
        yield bench, store, calibrate(bench, store, options=OPTIONS)


def _chip(bench: Bench) -> MRRChipSimulator:
    return bench.shared[SIMULATED_CHIP]


def _matrix(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_resonance_positions_and_widths_match_the_simulator(calibrated: tuple[Bench, Store, CalibrationRecord]) -> None:
    bench, _, record = calibrated
    truth = _chip(bench).truth
    assert record.parameters is not None and all(all(row) for row in record.parameters.fitted)
    volts_sq = truth.heater_resistance_ohm / 1e3  # V² per mW of each true heater
    true_center = (truth.channel_wavelength_nm - truth.rest_resonance_nm) / truth.efficiency_nm_per_mw * volts_sq
    true_width = truth.fwhm_nm / truth.efficiency_nm_per_mw * volts_sq
    fitted_sq = _matrix(record.parameters.heater_resistance_ohm) / 1e3
    center = _matrix(record.parameters.resonance_mw) * fitted_sq
    width = _matrix(record.parameters.fwhm_mw) * fitted_sq

    position_rms = float(((center - true_center) / true_width).square().mean().sqrt())
    width_rms = float(((width - true_width) / true_width).square().mean().sqrt())
    assert position_rms < 0.10, f"resonance positions off by {position_rms:.3%} of the FWHM (RMS)"
    assert width_rms < 0.10, f"widths off by {width_rms:.3%} (RMS)"
    assert float((_matrix(record.parameters.depth) - truth.drop_depth).abs().max()) < 0.02


def test_neighbour_crosstalk_coefficients_within_002(calibrated: tuple[Bench, Store, CalibrationRecord]) -> None:
    bench, _, record = calibrated
    truth = _chip(bench).truth.crosstalk_kernel
    assert record.crosstalk is not None and record.crosstalk.kernel is not None and record.parameters is not None
    for kernel in (record.crosstalk.kernel, record.parameters.crosstalk_kernel):  # stepped heater; after the fit
        error = (_matrix(kernel) - truth).abs()
        assert float(error[1:4, 1:4].max()) < 0.02, error
        assert float(error.max()) < 0.02, error


def test_readout_and_modulator_fits(calibrated: tuple[Bench, Store, CalibrationRecord]) -> None:
    bench, _, record = calibrated
    truth = _chip(bench).truth
    parameters = record.parameters
    assert parameters is not None
    assert float((_matrix([parameters.dark_volts]) - truth.readout_offset_v).abs().max()) < 1e-3
    assert float((_matrix([parameters.modulator_v_pi]) / truth.modulator_v_pi - 1).abs().max()) < 0.01
    true_units = truth.readout_volts_per_mw * truth.input_power_mw.mean()
    assert float((_matrix([parameters.volts_per_unit]) / true_units - 1).abs().max()) < 0.01

    apply_calibration(bench.system, record)
    assert torch.allclose(bench.system.readout.dark_volts, torch.tensor(parameters.dark_volts))
    assert torch.allclose(bench.system.readout.modulator_v_pi, torch.tensor(parameters.modulator_v_pi))


def test_twin_predicts_1000_held_out_measurements(calibrated: tuple[Bench, Store, CalibrationRecord]) -> None:
    bench, store, record = calibrated
    assert record.validation is not None
    assert record.validation.samples == 1000
    assert record.validation.weight_rms is not None and record.validation.weight_rms < 0.02

    # And once more here, through System.forward: a logical layer larger than the bank (tiled), fresh seed.
    twin = twin_for_bench(bench, store)
    assert isinstance(twin, Twin)
    generator = torch.Generator().manual_seed(1234)
    errors = []
    for _ in range(10):
        controls = 4.0 * torch.rand(10, 12, generator=generator).sqrt()  # uniform in heater power
        x = torch.rand(100, 12, generator=generator)
        measured = bench.system.forward(x, controls)
        with torch.no_grad():
            predicted = twin.layer(x, controls)
        errors.append((predicted - measured) / x.norm(dim=1, keepdim=True))
    weight_rms = float(torch.cat(errors).square().mean().sqrt())
    assert weight_rms < 0.02, f"twin weight RMS error {weight_rms:.4f}"


def test_queries_and_bench_time_are_reported_per_procedure(calibrated: tuple[Bench, Store, CalibrationRecord]) -> None:
    _, _, record = calibrated
    assert record.procedures == ["detectors", "modulators", "rings", "crosstalk", "heaters", "validation"]
    for name in record.procedures:
        result = record.result(name)
        assert result is not None and result.complete
        assert result.cost.programs > 0 and result.cost.samples > 0 and result.cost.bench_time_s > 0, name
    rings = record.rings
    assert rings is not None
    # Columns 3 apart (beyond the 5×5 kernel's reach) share heater maps: {0, 3, 6}, {1, 4, 7}, {2, 5};
    # each map is read with one sample per lit channel, each sample serving a whole column of rows.
    assert [sorted({c for _, c in group}) for group in rings.groups] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert rings.cost.programs == len(rings.groups) * OPTIONS.sweep_points
    assert rings.cost.samples == record.cols * OPTIONS.sweep_points


def test_records_are_listed_compared_and_partial_runs_inherit(
    calibrated: tuple[Bench, Store, CalibrationRecord],
) -> None:
    bench, store, record = calibrated
    assert store.latest_calibration(bench.name) == record
    assert all(item.max_abs == 0 for item in compare(record, record).parameters if item.count)

    again = calibrate(bench, store, only=["validation"], options=OPTIONS)
    assert again.inherited_from == record.id
    assert again.rings == record.rings and again.heaters == record.heaters
    assert again.validation is not None and again.validation.record_id == again.id
    assert again.validation.cost.programs == OPTIONS.validation_maps
    assert [r.id for r in store.list_calibrations(bench.name)] == [again.id, record.id]

    shifted = record.model_copy(deep=True)
    assert shifted.parameters is not None
    shifted.parameters.resonance_mw[2][3] += 0.5
    difference = {item.name: item for item in compare(record, shifted).parameters}["resonance_mw"]
    assert difference.max_abs == pytest.approx(0.5) and difference.worst_index == [2, 3]
    assert difference.count == record.rows * record.cols
