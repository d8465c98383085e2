"""The twin: the bank's physics with a record's parameters, in the System's logical units, differentiable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from labsat.bench import Bench, open_bench
from labsat.calibration.twins import twin_for_bench
from labsat.errors import LabsatError
from labsat.physics.mrr import MRRChipParams, bank_weights
from labsat.readout import Readout
from labsat.store import Store
from labsat.truth import SIMULATED_CHIP
from labsat.twin import ChipParameters, Twin, chip_params


def _truth(bench: Bench) -> MRRChipParams:
    return bench.shared[SIMULATED_CHIP].truth


def _exact_readout(truth: MRRChipParams) -> Readout:
    """The readout a perfect calibration would give: logical weight = ring weight × P_c / mean(P)."""
    return Readout(
        volts_per_unit=(truth.readout_volts_per_mw * truth.input_power_mw.mean()).float(),
        dark_volts=truth.readout_offset_v.float(),
        modulator_v_pi=truth.modulator_v_pi.float(),
    )


def test_twin_layer_answers_like_system_forward_for_a_tiled_layer(sim_bench: Bench) -> None:
    truth = _truth(sim_bench)
    readout = _exact_readout(truth)
    sim_bench.system.readout = readout
    twin = Twin(truth.to(dtype=torch.float32), readout)
    generator = torch.Generator().manual_seed(3)
    controls = 4.0 * torch.rand(12, 10, generator=generator).sqrt()  # 2×2 tiles of the 8×8 bank
    x = torch.rand(64, 10, generator=generator)
    measured = sim_bench.system.forward(x, controls)
    with torch.no_grad():
        predicted = twin.layer(x, controls)
    assert predicted.shape == measured.shape == (64, 12)
    per_weight = ((predicted - measured) / x.norm(dim=1, keepdim=True)).square().mean().sqrt()
    assert float(per_weight) < 3e-3  # detector noise only


def test_record_parameters_give_the_chip_back_whatever_efficiency_is_assumed(sim_bench: Bench) -> None:
    truth = _truth(sim_bench)
    efficiency = truth.efficiency_nm_per_mw
    parameters = ChipParameters(
        assumed_efficiency_nm_per_mw=0.25,  # not the chip's (0.2 ± 5 %): sweeps cannot see it, weights must not care
        heater_resistance_ohm=truth.heater_resistance_ohm.tolist(),
        resonance_mw=((truth.channel_wavelength_nm - truth.rest_resonance_nm) / efficiency).tolist(),
        fwhm_mw=(truth.fwhm_nm / efficiency).tolist(),
        depth=truth.drop_depth.tolist(),
        fitted=[[True] * truth.cols for _ in range(truth.rows)],
        row_gain_v_per_mw=truth.readout_volts_per_mw.tolist(),
        channel_power_mw=truth.input_power_mw.tolist(),
        dark_volts=truth.readout_offset_v.tolist(),
        modulator_v_pi=truth.modulator_v_pi.tolist(),
        crosstalk_kernel=truth.crosstalk_kernel.tolist(),
    )
    rebuilt = chip_params(parameters, dtype=torch.float64)
    volts = 4.0 * torch.rand(
        20, truth.rows, truth.cols, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    assert torch.allclose(bank_weights(rebuilt, volts), bank_weights(truth, volts), atol=1e-9)
    assert parameters.volts_per_unit == pytest.approx(
        (truth.readout_volts_per_mw * truth.input_power_mw.mean()).tolist()
    )


def test_twin_gradients_are_exact(sim_bench: Bench) -> None:
    truth = _truth(sim_bench).to(dtype=torch.float64)
    readout = Readout(
        volts_per_unit=truth.readout_volts_per_mw.clone(),
        dark_volts=truth.readout_offset_v.clone(),
        modulator_v_pi=truth.modulator_v_pi.clone(),
    )
    twin = Twin(truth, readout)
    generator = torch.Generator().manual_seed(11)
    x = torch.rand(3, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    controls = (
        2.2 + 0.2 * torch.rand(5, 8, generator=generator, dtype=torch.float64)
    ).requires_grad_()  # near resonance
    assert torch.autograd.gradcheck(twin.layer, (x, controls))


def test_a_bench_without_a_calibration_has_no_twin(sim_bench: Bench, data_dir: Path) -> None:
    with pytest.raises(LabsatError, match=r"no finished calibration .* `labsat calibrate"):
        twin_for_bench(sim_bench, Store(data_dir))


def test_a_bench_of_another_system_is_refused_before_the_store_is_read(data_dir: Path) -> None:
    mesh = Path(__file__).parents[1] / "config" / "sim-mzi.yaml"
    refused = pytest.raises(LabsatError, match="not an MRR bank")
    with open_bench(mesh, torch_device=torch.device("cpu")) as bench, refused:
        twin_for_bench(bench, Store(data_dir))


def test_a_twin_without_fabrication_offsets_rests_every_ring_at_the_mean(sim_bench: Bench) -> None:
    truth = _truth(sim_bench)
    twin = Twin(truth.to(dtype=torch.float32), _exact_readout(truth))
    rest = twin.model.params.rest_resonance_nm.clone()
    assert float(rest.std()) > 0.01  # the simulated chip has fabrication offsets to forget
    uninformed = twin.without_fabrication_offsets()
    design = uninformed.model.params
    torch.testing.assert_close(design.rest_resonance_nm, torch.full_like(rest, float(rest.mean())))
    torch.testing.assert_close(design.fwhm_nm, twin.model.params.fwhm_nm)
    torch.testing.assert_close(uninformed.volts_per_unit, twin.volts_per_unit)
    torch.testing.assert_close(twin.model.params.rest_resonance_nm, rest)  # the original is untouched
    controls = torch.full((twin.rows, twin.cols), 1.0)
    x = torch.rand(3, twin.cols, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(uninformed.layer(x, controls), twin.layer(x, controls))
