"""The photonic-network harness: losses over the controls, perturbed chips, and one whole evaluation.

The chip is the default bench's design read out through a fixed readout (no bench, no calibration), so
these tests are about the plumbing: that the perturbations reach the physics, that the Hessian goes
through the real ring model, and that an evaluation comes back complete.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from labsat.datasets import Split
from labsat.evaluation import HessianOperator
from labsat.evaluation.chips import fresh_chip_population, fresh_chips
from labsat.evaluation.photonic import (
    EvaluationError,
    EvaluationSettings,
    drift_model,
    evaluate_network,
    network_loss,
    photonic_controls,
    population_transfer_sweep,
    transfer_model,
)
from labsat.evaluation.sweeps import TRANSFER, run_sweep
from labsat.readout import Readout
from labsat.simulators.mrr import MRRSimConfig, chip_params
from labsat.training.network import PhotonicNet
from labsat.twin import Twin

SIZES = (6, 4, 3)


def _readout() -> Readout:
    return Readout(
        volts_per_unit=torch.full((8,), 0.5),
        dark_volts=torch.full((8,), 0.002),
        modulator_v_pi=torch.full((8,), 2.0),
    )


@pytest.fixture(scope="module")
def setup() -> tuple[PhotonicNet, Twin, Split]:
    generator = torch.Generator().manual_seed(0)
    chip = Twin(chip_params(MRRSimConfig(), 8, 8, seed=7, dtype=torch.float32), _readout())
    net = PhotonicNet(SIZES)
    with torch.no_grad():
        for theta in net.photonic_parameters():  # heaters spread over the range, so rings sit on their flanks
            theta.copy_(torch.rand(theta.shape, generator=generator) * 3.5 + 0.25)
    split = Split(torch.rand(24, SIZES[0], generator=generator), torch.arange(24) % SIZES[-1])
    return net, chip, split


def _logits(net: PhotonicNet, chip: Twin, x: torch.Tensor, delta_t_k: float = 0.0) -> torch.Tensor:
    return net(x, lambda index, h, theta: chip.layer(h, theta, delta_t_k))


def test_controls_are_the_photonic_layers_only(setup) -> None:
    net, _, _ = setup
    controls = photonic_controls(net)
    assert controls.names == ("theta.0", "theta.1")
    assert controls.numel == 6 * 4 + 4 * 3


def test_loss_and_hessian_go_through_the_ring_physics(setup) -> None:
    net, chip, split = setup
    net, chip, split = copy.deepcopy(net).double(), copy.deepcopy(chip).double(), Split(split.x.double(), split.y)
    loss_fn, theta = network_loss(net, chip.layer, split)
    expected = F.cross_entropy(_logits(net, chip, split.x), split.y)
    torch.testing.assert_close(loss_fn(theta), expected)
    dense = torch.autograd.functional.hessian(loss_fn, theta)
    probe = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(2), dtype=theta.dtype)
    torch.testing.assert_close(HessianOperator(loss_fn, theta)(probe), dense @ probe)


def test_drift_moves_the_chip_and_zero_drift_is_the_trained_chip(setup) -> None:
    net, chip, split = setup
    factory = drift_model(net, chip.layer)
    generator = torch.Generator()
    torch.testing.assert_close(factory(0.0, generator)(split.x), _logits(net, chip, split.x))
    torch.testing.assert_close(factory(-1.0, generator)(split.x), _logits(net, chip, split.x, -1.0))
    assert not torch.allclose(factory(-1.0, generator)(split.x), factory(0.0, generator)(split.x))


def test_transfer_draws_one_fresh_chip_per_seed(setup) -> None:
    net, _, split = setup
    factory = transfer_model(net, fresh_chips(MRRSimConfig(), 8, 8, _readout(), torch.device("cpu")))

    def outputs(seed: int) -> torch.Tensor:
        return factory(0.08, torch.Generator().manual_seed(seed))(split.x)

    torch.testing.assert_close(outputs(1), outputs(1))
    assert not torch.allclose(outputs(1), outputs(2))


def test_a_chip_population_runs_as_one_tensor_and_equals_its_chips_one_by_one() -> None:
    generator = torch.Generator().manual_seed(3)
    net = PhotonicNet((12, 10, 3))  # 10 × 12 tiles over the 8 × 8 bank: partial tiles on both axes
    with torch.no_grad():
        for theta in net.photonic_parameters():
            theta.copy_(torch.rand(theta.shape, generator=generator) * 3.5 + 0.25)
    x = torch.rand(40, 12, generator=generator)
    design = (MRRSimConfig(), 8, 8, _readout(), torch.device("cpu"))
    seeds = [11, 12, 13, 14]
    batched = _logits_on(net, fresh_chip_population(*design)(0.1, seeds), x)
    assert batched.shape == (4, 40, 3)
    one_by_one = torch.stack([_logits_on(net, fresh_chips(*design)(0.1, seed), x) for seed in seeds])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])  # different chips, different answers


def test_the_batched_transfer_sweep_is_the_chip_by_chip_sweep(setup) -> None:
    net, _, split = setup
    design = (MRRSimConfig(), 8, 8, _readout(), torch.device("cpu"))
    values = (0.0, 0.08, 0.3)
    looped = run_sweep(TRANSFER, transfer_model(net, fresh_chips(*design)), split.x, split.y, seeds=5, values=values)
    batched = population_transfer_sweep(net, fresh_chip_population(*design), split.x, split.y, seeds=5, values=values)
    assert batched.seeds == looped.seeds and batched.spec.values == values
    torch.testing.assert_close(batched.accuracy, looped.accuracy)
    with pytest.raises(ValueError, match="at least 5 seeds"):
        population_transfer_sweep(net, fresh_chip_population(*design), split.x, split.y, seeds=2)


def _logits_on(net: PhotonicNet, layer, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x, lambda index, h, theta: layer(h, theta, 0.0))


def test_one_evaluation_has_every_part(setup) -> None:
    net, chip, split = setup
    chips = fresh_chip_population(MRRSimConfig(), 8, 8, _readout(), torch.device("cpu"))
    settings = EvaluationSettings(
        sweeps=("drift", "transfer"), seeds=2, probes=8, hessian_samples=12, landscape_steps=3
    )
    result = evaluate_network("net", net, chip.layer, split, chips=chips, settings=settings)
    assert result.accuracy == pytest.approx(float(result.sweeps["drift"].mean[10]))  # ΔT = 0 is the clean chip
    assert result.sweeps["drift"].seeds == (0,)  # a chip model has nothing random to average over
    assert len(result.sweeps["transfer"].seeds) == 5  # at least five fresh chips, whatever was asked
    assert result.sharpness is not None and result.sharpness.hvps > 8
    assert result.landscape is not None and result.landscape.losses.shape == (3, 3)
    assert result.confusion is not None and int(result.confusion.matrix.sum()) == len(split)
    with pytest.raises(EvaluationError, match="misalignment needs a free-space system"):
        evaluate_network("net", net, chip.layer, split, settings=EvaluationSettings(sweeps=("misalignment",)))
    with pytest.raises(EvaluationError, match="transfer needs a simulated design"):
        evaluate_network("net", net, chip.layer, split, settings=EvaluationSettings(sweeps=("transfer",)))
