"""A sweep on the MZI mesh: twin choice, fresh devices, the transfer diagonal, coupler errors, design curvature."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sweep_helpers import measured_sweep

from labsat.bench import builtin_bench_path, open_bench
from labsat.benchfile import load_bench_file
from labsat.evaluation.mesh_chips import design_layer, fresh_device_seeds, fresh_mesh
from labsat.systems.kind import system_of
from labsat.systems.mzi import MZIMeshSystem

SPEC = """\
name: mesh
dataset: digits
bench: sim-mzi.yaml
base: {method: bp-control, epochs: 1, batch_size: 64, lr: 0.05, digital_lr: 0.02}
axes:
  twin: [design, calibrated]
  seed: [0]
measure: [accuracy, fresh_devices, mesh_transfer, coupler_errors, lambda_max, lambda_min, trace, forwards]
fresh_device_count: 2
mesh_transfer_sigma: [0.0, 0.3]
coupler_sigma_bs: [0.0, 0.5]
lanczos_steps: 6
trace_probes: 3
hessian_samples: 40
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    return measured_sweep(tmp_path_factory, SPEC, cells=2)


def test_the_twin_axis_trains_each_cell_with_its_twin(measured: xr.Dataset) -> None:
    assert list(measured["twin"].values) == ["design", "calibrated"]
    # In-silico BP makes no device forwards with either twin, and the two twins give two different models.
    assert bool((measured["forwards"] == 0).all())
    design, calibrated = (measured["accuracy"].sel(twin=t).item() for t in ("design", "calibrated"))
    assert design != calibrated


def test_mesh_measures_are_curves_over_their_spec_lists_with_units(measured: xr.Dataset) -> None:
    assert measured["mesh_transfer"].dims == ("twin", "seed", "mesh_transfer_sigma")
    assert measured["coupler_errors"].dims == ("twin", "seed", "coupler_sigma_bs")
    assert measured["mesh_transfer_sigma"].attrs["units"] == "1"
    for name in ("accuracy", "fresh_devices", "mesh_transfer", "coupler_errors"):
        assert measured[name].attrs["units"] == "fraction of the test split"
        assert bool(((measured[name] >= 0) & (measured[name] <= 1)).all())
    # Two fresh devices are two chips, and the larger coupler error is another chip again.
    assert bool((measured["fresh_devices_std"] > 0).all())
    errors = measured["coupler_errors"]
    assert bool((errors.sel(coupler_sigma_bs=0.0) != errors.sel(coupler_sigma_bs=0.5)).all())


def test_mesh_curvature_is_in_phase_units_and_brackets_the_spectrum(measured: xr.Dataset) -> None:
    for name in ("lambda_max", "lambda_min", "trace"):
        assert measured[name].attrs["units"] == "rad⁻²"
        assert bool(np.isfinite(measured[name]).all())
    assert bool((measured["lambda_max"] >= measured["lambda_min"]).all())


def test_a_fresh_mesh_without_errors_or_spreads_is_the_design_mesh() -> None:
    spec = load_bench_file(builtin_bench_path("sim-mzi.yaml"))
    ideal = spec.model_copy(update={"simulator": {**spec.simulator, "p_pi_spread": 0.0, "resistance_spread": 0.0}})
    generator = torch.Generator().manual_seed(0)
    x, shifts = torch.rand(6, 10, generator=generator), 6.0 * torch.rand(90, generator=generator)
    with open_bench(spec) as bench:
        design = design_layer(system_of(bench, MZIMeshSystem), 10)(x, shifts, 0.0)
    ideal_mesh = fresh_mesh(ideal)(0.0, 3)(x, shifts, 0.0)
    torch.testing.assert_close(ideal_mesh, design, atol=1e-5, rtol=1e-5)
    # With the bench's own errors the same phases land elsewhere: a fresh mesh is another chip.
    assert (fresh_mesh(spec)(0.15, 3)(x, shifts, 0.0) - design).abs().max() > 0.05
    assert fresh_device_seeds(spec, 2) == [spec.seed + 1000, spec.seed + 2000]
