"""Rings without a visible resonance and saturated detectors are flagged with a reason, never fitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from conftest import BenchWriter

from labsat.bench import open_bench
from labsat.calibration import CalibrationOptions, CalibrationRecord, calibrate
from labsat.calibration.rings import mutual_heating
from labsat.store import Store
from labsat.truth import SIMULATED_CHIP

SWEEPS_ONLY = ["detectors", "modulators", "rings"]
OPTIONS = CalibrationOptions(sweep_points=32)


def _calibrate(path: Path, data_dir: Path) -> tuple[CalibrationRecord, Any]:
    with open_bench(path) as bench:  # no data dir for the simulator: it need not keep its outputs between runs
        record = calibrate(bench, Store(data_dir), only=SWEEPS_ONLY, options=OPTIONS)
        return record, bench.shared[SIMULATED_CHIP].truth


def _ring_flags(record: CalibrationRecord) -> dict[str, str]:
    return {flag.target: flag.message for flag in record.flags if flag.procedure == "rings"}


def test_rings_whose_resonance_is_beyond_the_heater_range_are_flagged(write_bench: BenchWriter, data_dir: Path) -> None:
    def low_power(data: dict[str, Any]) -> None:
        data["devices"]["heaters"]["limits"]["power_max_mw"] = 5.0  # the rings rest ~5 mW below their channel

    record, truth = _calibrate(write_bench(low_power), data_dir)
    assert record.rings is not None and record.rings.power_mw[1] <= 5.0
    center_mw = (truth.channel_wavelength_nm - truth.rest_resonance_nm) / truth.efficiency_nm_per_mw
    center_mw = center_mw * truth.heater_resistance_ohm / 1000.0  # in mW at the bench file's 1 kΩ
    # Rings swept together help each other along: where the sweep sees each peak.
    heating = mutual_heating(truth.crosstalk_kernel, record.rings.groups, truth.heater_resistance_ohm)
    center_mw = center_mw / (1 + heating)
    half_width = float((truth.fwhm_nm / truth.efficiency_nm_per_mw).max()) / 2
    flags = _ring_flags(record)
    fitted = flagged = 0
    for r in range(record.rows):
        for c in range(record.cols):
            fit, message = record.rings.fits[r][c], flags.get(f"ring ({r}, {c})")
            assert (fit is None) == (message is not None), (r, c)
            if fit is None:
                flagged += 1
                assert "heater sweep" in message and "not fitted" in message
                assert float(center_mw[r, c]) > 5.0 - half_width, (r, c, message)
            else:
                fitted += 1
                assert float(center_mw[r, c]) < 5.0, (r, c)
    assert fitted and flagged


def test_a_ring_bank_with_no_resonance_in_reach_is_all_flagged(write_bench: BenchWriter, data_dir: Path) -> None:
    def far(data: dict[str, Any]) -> None:
        data["simulator"]["rest_detuning_nm"] = 8.0  # 40 mW of heating away; the heaters give 16

    record, _ = _calibrate(write_bench(far), data_dir)
    assert record.rings is not None and all(fit is None for row in record.rings.fits for fit in row)
    flags = _ring_flags(record)
    assert len(flags) == record.rows * record.cols
    assert all("no resonance visible" in message for message in flags.values())
    assert record.parameters is None  # nothing to build a twin from, and no silent stand-in


def test_saturated_detectors_are_flagged_not_fitted(write_bench: BenchWriter, data_dir: Path) -> None:
    def tiny_range(data: dict[str, Any]) -> None:
        data["simulator"]["adc_full_scale_v"] = 0.3  # a ring swings ±0.5 V

    record, _ = _calibrate(write_bench(tiny_range), data_dir)
    assert record.detectors is not None
    assert record.detectors.saturated_rows == list(range(record.rows))
    detector_flags = [flag for flag in record.flags if flag.procedure == "detectors"]
    assert len(detector_flags) == record.rows and all("saturates" in flag.message for flag in detector_flags)
    assert record.modulators is not None and all(v is None for v in record.modulators.v_pi)
    assert record.rings is not None and all(fit is None for row in record.rings.fits for fit in row)
    assert all("saturates" in message for message in _ring_flags(record).values())


def test_a_row_that_clips_only_with_every_channel_lit_still_has_its_rings_fitted(
    write_bench: BenchWriter, data_dir: Path
) -> None:
    def mid_range(data: dict[str, Any]) -> None:
        data["simulator"]["adc_full_scale_v"] = 2.0  # one channel: ±0.5 V; all eight at rest: about −4 V

    record, truth = _calibrate(write_bench(mid_range), data_dir)
    assert record.detectors is not None and record.detectors.saturated_rows == list(range(record.rows))
    assert record.rings is not None and all(fit is not None for row in record.rings.fits for fit in row)
    assert record.modulators is not None
    fitted_v_pi = torch.tensor(record.modulators.v_pi, dtype=torch.float64)
    assert torch.allclose(fitted_v_pi, truth.modulator_v_pi, rtol=0.01)
    assert {flag.procedure for flag in record.flags} == {"detectors"}
