"""Sweep measures on a tiny grid: read noise, transfer to fresh chips, sharpness, each stored with its unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from sweep_helpers import measured_sweep

from labsat.datasets import load_dataset
from labsat.sweep.spec import SpecError, load_spec
from labsat.training.config import TrainConfig

SPEC = """\
name: measures
dataset: iris
base: {method: bp, epochs: 2, hidden: [4], batch_size: 64}
axes:
  seed: [0, 1]
measure: [accuracy, chip_accuracy, noise, control_noise, transfer, lambda_max, lambda_min, trace, forwards]
read_noise: [0.0, 0.3]
control_noise_v: [0.0, 0.2]
read_noise_draws: 2
transfer_sigma_nm: [0.0, 0.1]
lanczos_steps: 8
trace_probes: 4
hessian_samples: 30
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    return measured_sweep(tmp_path_factory, SPEC, cells=2)


def test_noise_is_a_curve_over_sigma_and_sigma_zero_is_the_clean_chip_accuracy(measured: xr.Dataset) -> None:
    noise = measured["noise"]
    assert noise.dims == ("seed", "read_noise")
    assert measured["read_noise"].attrs["units"] == "fraction of the output's RMS"
    assert noise.attrs["units"] == "fraction of the test split"
    xr.testing.assert_equal(noise.sel(read_noise=0.0, drop=True), measured["chip_accuracy"])
    assert bool((measured["noise_std"].sel(read_noise=0.0) == 0).all())  # no noise: every draw the same
    assert bool((measured["noise_std"].sel(read_noise=0.3) > 0).any())  # 30 % read noise moves some answers


def test_control_noise_at_zero_volts_is_the_clean_chip_accuracy(measured: xr.Dataset) -> None:
    assert measured["control_noise"].dims == ("seed", "control_noise_v")
    assert measured["control_noise"].attrs["units"] == "fraction of the test split"
    assert measured["control_noise_v"].attrs["units"] == "V"
    xr.testing.assert_equal(measured["control_noise"].sel(control_noise_v=0.0, drop=True), measured["chip_accuracy"])
    assert bool((measured["control_noise_std"].sel(control_noise_v=0.2) > 0).any())


def test_transfer_runs_the_same_controls_on_fresh_chips(measured: xr.Dataset) -> None:
    transfer = measured["transfer"]
    assert transfer.dims == ("seed", "transfer_sigma_nm")
    assert measured["transfer_sigma_nm"].attrs["units"] == "nm"
    assert bool(((transfer >= 0) & (transfer <= 1)).all())
    # Fresh chips are other chips: the same controls do not score what they score on their own chip.
    assert not bool((transfer.sel(transfer_sigma_nm=0.1) == measured["chip_accuracy"]).all())
    assert bool((measured["transfer_std"].sel(transfer_sigma_nm=0.1) > 0).any())


def test_sharpness_brackets_the_spectrum_with_its_uncertainties(measured: xr.Dataset) -> None:
    for name in ("lambda_max", "lambda_min", "trace"):
        assert measured[name].dims == ("seed",)
        assert measured[name].attrs["units"].startswith("V⁻²")
        assert bool(np.isfinite(measured[name]).all() & (measured[f"{name}_error"] >= 0).all())
    assert bool((measured["lambda_max"] >= measured["lambda_min"]).all())
    assert bool((measured["lambda_max"] > 0).all())  # a trained net: the loss curves up somewhere


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("dataset: iris", "dataset: iris\nbench: sim-mzi.yaml", r"measure chip_accuracy needs an MRR bank's chip"),
        ("trace_probes: 4", "trace_probes: 4\nmeasure: [coupler_errors]", r"measure coupler_errors needs an MZI mesh"),
        ("seed: [0, 1]", "seed: [0, 1]\n  twin: [calibrated, design]", r"twin 'design' trains on a mesh's design"),
        ("seed: [0, 1]", "seed: [0, 1]\n  twin: [fitted]", r"twin 'fitted' is not one of: calibrated, design, unin"),
        (
            "seed: [0, 1]",
            "seed: [0, 1]\n  twin: [uninformed]\nbench: sim-mzi.yaml",
            r"twin 'uninformed' trains on a bank's calibrated twin without its fabrication offsets; bench "
            r"'sim-mzi\.yaml' is a",
        ),
        (
            "seed: [0, 1]\nmeasure: [accuracy,",
            "seed: [0, 1]\n  validation_fraction: [0.15, 0.0]\nmeasure: [validation_drift,",
            r"measure validation_drift needs a validation split; validation_fraction is 0",
        ),
        ("read_noise: [0.0, 0.3]", "read_noise: [0.0, -0.3]", r"read_noise\[1\] = -0.3: a spread must be >= 0"),
        (
            "transfer_sigma_nm: [0.0, 0.1]",
            "transfer_chips: 2",
            r"transfer_chips: Input should be greater than or equal to 5",
        ),
        (
            "dataset: iris",
            "dataset: iris\nbench: no-such.yaml",
            r"bench 'no-such\.yaml': .*no such built-in bench file",
        ),
    ],
)
def test_a_spec_the_measures_cannot_run_is_refused_by_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace(old, new))
    with pytest.raises(SpecError, match=r"bad\.yaml: " + message):
        load_spec(path)


UNINFORMED = """\
name: offsets
dataset: iris
base: {method: bp, epochs: 2, hidden: [4], batch_size: 64}
axes:
  twin: [calibrated, uninformed]
  seed: [0]
measure: [accuracy, validation_drift]
drift_k: [0.0, -2.0]
"""


def test_validation_drift_is_measured_on_the_held_out_split_with_either_bank_twin(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    measured = measured_sweep(tmp_path_factory, UNINFORMED, cells=2)
    curve = measured["validation_drift"]
    assert curve.dims == ("twin", "seed", "drift_k")
    assert curve.attrs["units"] == "fraction of the test split"
    held_out = load_dataset("iris", seed=0).with_validation(TrainConfig().validation_fraction, 0).validation
    assert held_out is not None
    # Every value is a count of the validation split's samples, not of the test split's.
    counts = curve.values * len(held_out)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    assert len(held_out) != len(load_dataset("iris", seed=0).test)
    assert bool(((curve >= 0) & (curve <= 1)).all())
