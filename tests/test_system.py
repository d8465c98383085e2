"""The MRR System: tiled, time-multiplexed layer operations through the guard, with query accounting."""

from __future__ import annotations

import math

import pytest
import torch

from labsat.bench import Bench
from labsat.errors import LimitViolation
from labsat.physics.mrr import MRRBankModel
from labsat.readout import Readout
from labsat.truth import SIMULATED_CHIP


def _true_readout(bench: Bench) -> Readout:
    """The readout a perfect calibration would find for this simulated chip."""
    truth = bench.shared[SIMULATED_CHIP].truth
    return Readout(
        volts_per_unit=(truth.readout_volts_per_mw * truth.input_power_mw[0]).float(),
        dark_volts=truth.readout_offset_v.float(),
        modulator_v_pi=truth.modulator_v_pi.float(),
    )


def test_tiled_forward_matches_the_chip_physics(sim_bench: Bench) -> None:
    system = sim_bench.system
    system.readout = _true_readout(sim_bench)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 20, generator=generator)
    controls = 1.0 + 2.0 * torch.rand(12, 20, generator=generator)  # 12x20 layer on an 8x8 bank: 2x3 tiles
    y = system.forward(x, controls)
    truth = MRRBankModel(sim_bench.shared[SIMULATED_CHIP].truth)
    quantised = sim_bench.shared[SIMULATED_CHIP].quantise_heater_volts(controls.double())
    expected = truth.layer(x.double(), quantised).float()
    assert y.shape == (32, 12)
    assert torch.allclose(y, expected, atol=0.02), (y - expected).abs().max()
    assert system.stats.programs == 6
    assert system.stats.samples == 6 * 32
    assert system.stats.forwards == 1


def test_bench_time_accounts_for_ramps_and_settling(sim_bench: Bench) -> None:
    system = sim_bench.system
    before = system.stats.copy()
    controls = torch.full((8, 8), 2.0)
    system.forward(torch.rand(10, 8), controls)
    spent = system.stats.since(before)
    heaters = sim_bench.source("heaters").limits[0]
    ramp_steps = math.ceil(2.0 / heaters.max_step)
    assert spent.bench_time_s >= system.spec.settle_time_s + (ramp_steps - 1) * heaters.step_delay
    assert spent.bench_time_s == pytest.approx(sim_bench.clock.now(), rel=1e-9)


def test_device_level_path_agrees_with_streaming(sim_bench: Bench) -> None:
    system = sim_bench.system
    controls = 0.5 + 3.0 * torch.rand(8, 8, generator=torch.Generator().manual_seed(1))
    x = torch.rand(6, 8, generator=torch.Generator().manual_seed(2))
    streamed = system.forward(x, controls)
    system.streamer = None  # sample by sample: modulator writes and detector reads through the guard
    stepped = system.forward(x, controls)
    assert torch.allclose(streamed, stepped, atol=0.01)
    assert system.stats.samples == 12


def test_controls_outside_the_limits_are_refused(sim_bench: Bench) -> None:
    system = sim_bench.system
    controls = torch.full((8, 8), 1.0)
    controls[3, 5] = 4.5
    with pytest.raises(LimitViolation, match=r"heaters\.h29 = 4\.5"):
        system.forward(torch.rand(2, 8), controls)


def test_negative_inputs_are_rejected(sim_bench: Bench) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        sim_bench.system.forward(-torch.ones(2, 8), torch.ones(8, 8))
