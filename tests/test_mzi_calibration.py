"""MZI mesh calibration: the fitted phase-vs-power lines, couplers and readout against the simulator's truth."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from labsat.bench import open_bench
from labsat.benchfile import parse_bench
from labsat.calibration import calibrate
from labsat.calibration.mzi import calibrate_mesh
from labsat.errors import LabsatError
from labsat.store import Store
from labsat.training.mzi import mesh_physical_layer
from labsat.truth import SIMULATED_CHIP

CONFIG = Path(__file__).parents[1] / "config" / "sim-mzi.yaml"


def _six_mode_bench() -> dict:
    """Device A's error class on a 6-mode mesh (30 heaters): the same fit, a fraction of the time."""
    data = yaml.safe_load(CONFIG.read_text())
    data["devices"]["heaters"]["channels"]["count"] = 30
    data["devices"]["modulators"]["channels"]["count"] = 6
    data["devices"]["detectors"]["channels"]["count"] = 6
    data["system"]["modes"] = 6
    return data


def _wrapped(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b + math.pi).remainder(2 * math.pi) - math.pi


def test_fit_recovers_every_mzi_and_predicts_held_out_settings() -> None:
    spec = parse_bench(_six_mode_bench(), "sim-mzi-6.yaml")
    with open_bench(spec, torch_device=torch.device("cpu")) as bench:
        calibration = calibrate_mesh(bench.system, settings=60, holdout=20, random_inputs=6, steps=400, seed=1)
        truth = bench.shared[SIMULATED_CHIP].truth
    fitted = calibration.params
    for name in ("theta_offset", "phi_offset"):
        error = _wrapped(getattr(fitted, name).double(), getattr(truth, name).double())
        # σ_ph = 0.15 rad before calibration; a short fit (400 steps) of a noisy bench.
        assert float(error.square().mean().sqrt()) < 0.02 and float(error.abs().max()) < 0.05, name
    for name in ("split_in", "split_out"):
        assert float((getattr(fitted, name).double() - getattr(truth, name).double()).abs().max()) < 0.03, name
    # Optically only P_π·R is seen: the fit's P_π at the nominal R carries the heater's true product.
    product = fitted.p_pi_mw.double() * fitted.heater_resistance_ohm.double()
    assert torch.allclose(product, truth.p_pi_mw.double() * truth.heater_resistance_ohm.double(), rtol=0.01)
    assert calibration.holdout_rms < 0.1 * calibration.design_holdout_rms
    assert calibration.holdout_rms < 2 * calibration.fit_rms  # predicts unseen settings as well as seen ones
    assert calibration.cost.programs == 80


def test_calibrated_twin_and_readout_match_the_device_in_phase_space() -> None:
    """After ``apply`` the System's readout is the fitted one and the twin predicts the device's outputs."""
    data = _six_mode_bench()
    data["simulator"]["noise"] = False
    with open_bench(parse_bench(data, "sim-mzi-6.yaml"), torch_device=torch.device("cpu")) as bench:
        system = bench.system
        calibration = calibrate_mesh(system, settings=60, holdout=10, random_inputs=6, steps=400, seed=2)
        design = mesh_physical_layer(system, system.nominal_twin())
        calibrated = mesh_physical_layer(system, calibration.apply(system))
        shifts = 2 * math.pi * torch.rand(30, generator=torch.Generator().manual_seed(3))
        x = torch.rand(12, 6, generator=torch.Generator().manual_seed(4))
        measured = calibrated.system_forward(x, shifts)
        calibrated_error = (calibrated.twin_layer(x, shifts) - measured).abs().max()
        design_error = (design.twin_layer(x, shifts) - design.system_forward(x, shifts)).abs().max()
    assert float(calibrated_error) < 0.02 * float(design_error)


def test_the_bank_calibration_refuses_a_mesh_bench_by_name(tmp_path: Path) -> None:
    """The bank's procedures (``calibrate``) on a mesh bench: a clear refusal naming the bench and the mesh tools."""
    store = Store(tmp_path / "store.db")
    try:
        refused = pytest.raises(LabsatError, match=r"'sim-mzi' is a 10-mode mesh.*calibrate_mesh")
        with open_bench(CONFIG, torch_device=torch.device("cpu")) as bench, refused:
            calibrate(bench, store)
        assert store.list_calibrations() == []
    finally:
        store.close()
