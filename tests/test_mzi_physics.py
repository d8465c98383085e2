"""MZI mesh physics: unitarity, energy, universality, coupler-error clipping, chip seeds."""

from __future__ import annotations

import math

import pytest
import torch

from labsat.clock import VirtualClock
from labsat.physics.mzi import (
    MZIChipParams,
    MZIMeshModel,
    mesh_layer,
    mesh_unitary,
    mzi_matrices,
    transfer_matrix,
    volts_for_phase,
)
from labsat.simulators.mzi import MZIChipSimulator, MZISimConfig, chip_params, draw_chips

D = torch.float64


def _random_volts(modes: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(modes * (modes - 1), generator=torch.Generator().manual_seed(seed), dtype=D) * 7


def test_ideal_and_faulty_meshes_are_unitary_and_conserve_energy() -> None:
    ideal = MZIChipParams.nominal(6, dtype=D)
    faulty = chip_params(MZISimConfig(sigma_bs=0.3, sigma_ph=0.3), 6, seed=3)
    for params in (ideal, faulty):
        u = transfer_matrix(params, _random_volts(6))
        assert torch.allclose(u @ u.mH, torch.eye(6, dtype=u.dtype), atol=1e-12)
        x = torch.rand(5, 6, dtype=D)
        assert torch.allclose(mesh_layer(params, x, _random_volts(6)).sum(-1), x.square().sum(-1), atol=1e-12)


def test_cross_and_bar_settings_give_the_reversal_and_the_identity() -> None:
    params = MZIChipParams.nominal(5, dtype=D)
    cross = transfer_matrix(params, torch.zeros(20, dtype=D)).abs()
    assert torch.allclose(cross, torch.eye(5, dtype=D).flip(0), atol=1e-12)
    bar_volts = volts_for_phase(params, torch.tensor([math.pi, 0.0] * 10, dtype=D))
    assert torch.allclose(transfer_matrix(params, bar_volts).abs(), torch.eye(5, dtype=D), atol=1e-12)


def test_mesh_reproduces_a_haar_random_unitary_up_to_output_phases() -> None:
    """Universality of the rectangular layout: phases fitted to a random target's rows reach it."""
    modes = 4
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(modes, modes, dtype=torch.complex128, generator=generator)
    target, _ = torch.linalg.qr(z)
    best = math.inf
    for _ in range(4):  # a few restarts: the phase landscape has local minima
        angles = (2 * math.pi * torch.rand(2, 6, dtype=D, generator=generator)).requires_grad_()
        optimizer = torch.optim.Adam([angles], lr=0.1)
        for _step in range(300):
            optimizer.zero_grad()
            u = mesh_unitary(mzi_matrices(angles[0], angles[1], torch.zeros(6, dtype=D), torch.zeros(6, dtype=D)))
            overlap = (u.conj() * target).sum(-1).abs().square()  # |<u_k, target_k>|², phase-blind per output
            loss = (1 - overlap).sum()
            loss.backward()
            optimizer.step()
        best = min(best, float(loss.detach()))
        if best < 1e-6:
            break
    assert best < 1e-6, f"residual {best}"


@pytest.mark.parametrize("sigma", [0.25, 0.3, 0.5])
def test_large_coupler_errors_never_give_nan(sigma: float) -> None:
    drawn = chip_params(MZISimConfig(sigma_bs=sigma, sigma_ph=sigma), 10, seed=5)
    # Past |ε| = 1 the reference code took √ of a negative number; put a few couplers there (and exactly at ±1).
    extreme = torch.tensor([-3.0, -1.0, 1.0, 1.5, 3.0], dtype=D)
    params = MZIChipParams(**{**drawn.tensors(), "split_in": torch.cat([extreme, drawn.split_in[5:]])})
    volts = _random_volts(10).requires_grad_()
    twin = MZIMeshModel(params, trainable=["split_in", "split_out"])
    y = twin.layer(torch.rand(8, 10, dtype=D), volts)
    y.sum().backward()
    for value in (y, volts.grad, twin.split_in.grad, twin.split_out.grad):
        assert value is not None and bool(torch.isfinite(value).all())


def test_same_seed_same_chip_other_seed_other_chip() -> None:
    config = MZISimConfig()
    a, b, c = (chip_params(config, 6, seed) for seed in (4, 4, 5))
    assert all(torch.equal(a.tensors()[k], b.tensors()[k]) for k in a.tensors())
    assert not torch.equal(a.theta_offset, c.theta_offset)
    population = draw_chips(config, 6, [4, 5])
    assert torch.equal(population.select(1).split_in, c.split_in)
    chip = MZIChipSimulator(config, 6, 4, VirtualClock(), device="cpu")
    assert torch.equal(chip.truth.phi_offset, a.phi_offset)
