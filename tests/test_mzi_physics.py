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
    output_intensities,
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


# -- the fast mesh against the equations, written out the slow way ----------------------------------


def _reference_layer(
    angles: torch.Tensor, split_in: torch.Tensor, split_out: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """``|U x|²`` from the module docstring's equations: each MZI as the product of its four 2×2 factors,
    each column as a dense N×N identity with the column's blocks written in, the columns multiplied in order."""
    modes = x.shape[-1]
    theta, phi = angles[..., 0], angles[..., 1]
    unitary = torch.eye(modes, dtype=torch.complex128)
    mzi = 0
    for column in range(modes):
        layer = torch.eye(modes, dtype=torch.complex128)
        for top in range(column % 2, modes - 1, 2):
            t1, r1 = (
                ((1 + split_in[mzi].clamp(-0.99, 0.99)) / 2).sqrt(),
                ((1 - split_in[mzi].clamp(-0.99, 0.99)) / 2).sqrt(),
            )
            t2, r2 = (
                ((1 + split_out[mzi].clamp(-0.99, 0.99)) / 2).sqrt(),
                ((1 - split_out[mzi].clamp(-0.99, 0.99)) / 2).sqrt(),
            )
            one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)

            def matrix(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
                return torch.stack([torch.stack([a, b]), torch.stack([c, d])]).to(torch.complex128)

            coupler_in = matrix(t1, 1j * r1, 1j * r1, t1)
            coupler_out = matrix(t2, 1j * r2, 1j * r2, t2)
            inner = matrix(torch.exp(1j * theta[mzi]), zero, zero, one)
            outer = matrix(torch.exp(1j * phi[mzi]), zero, zero, one)
            block = coupler_out @ inner @ coupler_in @ outer
            rows = torch.arange(top, top + 2)
            layer = layer.index_put((rows.view(2, 1), rows.view(1, 2)), block)
            mzi += 1
        unitary = layer @ unitary
    return (x.to(torch.complex128) @ unitary.mT).abs().square()


def _mesh_inputs(modes: int, seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    count = modes * (modes - 1) // 2
    angles = 2 * math.pi * torch.rand(count, 2, generator=generator, dtype=D)
    split_in, split_out = 0.4 * torch.randn(2, count, generator=generator, dtype=D)
    x = torch.rand(4, modes, generator=generator, dtype=D)
    return angles, split_in, split_out, x


def _fast_layer(angles: torch.Tensor, split_in: torch.Tensor, split_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return output_intensities(mesh_unitary(mzi_matrices(angles[..., 0], angles[..., 1], split_in, split_out)), x)


@pytest.mark.parametrize("modes", [2, 3, 4, 7, 10, 16])
def test_fast_mesh_matches_the_equations_with_gradients_to_every_chip_parameter(modes: int) -> None:
    """Values and gradients (phases, both couplers' split errors) agree with the written-out product to 1e-10."""
    inputs = _mesh_inputs(modes, seed=modes)
    weights = torch.rand(4, modes, generator=torch.Generator().manual_seed(99), dtype=D)
    results = []
    for layer in (_reference_layer, _fast_layer):
        leaves = [t.clone().requires_grad_() for t in inputs[:3]]
        y = layer(*leaves, inputs[3])
        results.append((y.detach(), *torch.autograd.grad((y * weights).sum(), leaves)))
    for reference, fast in zip(*results, strict=True):
        assert torch.allclose(fast, reference, rtol=0, atol=1e-10)


def test_fast_mesh_in_float32_stays_within_float32_rounding_of_the_float64_equations() -> None:
    """N = 32 in float32/complex64: 32 columns of rounding (~1e-7 each) leave a few 1e-6 of one input's power."""
    angles, split_in, split_out, x = (t.float() for t in _mesh_inputs(32, seed=3))
    reference = _reference_layer(angles.double(), split_in.double(), split_out.double(), x.double())
    single = _fast_layer(angles, split_in, split_out, x)
    assert single.dtype == torch.float32
    assert torch.allclose(single.double(), reference, rtol=0, atol=1e-5)


def test_fast_mesh_handles_chip_populations_like_single_chips() -> None:
    chips = [_mesh_inputs(6, seed) for seed in (1, 2, 3)]
    x = chips[0][3]
    stacked = [torch.stack([chip[i] for chip in chips]) for i in range(3)]
    population = _fast_layer(*stacked, x)
    assert population.shape == (3, 4, 6)
    for k, chip in enumerate(chips):
        assert torch.allclose(population[k], _reference_layer(*chip[:3], x), rtol=0, atol=1e-12)


def test_fast_mesh_hessian_vector_products_under_torch_func_match_the_equations() -> None:
    """Forward-over-reverse (as ``labsat.evaluation.hessian`` takes it), also under ``vmap``."""
    angles, split_in, split_out, x = _mesh_inputs(5, seed=8)
    vectors = torch.randn(3, *angles.shape, generator=torch.Generator().manual_seed(4), dtype=D)
    products = []
    for layer in (_reference_layer, _fast_layer):
        gradient = torch.func.grad(lambda a, layer=layer: layer(a, split_in, split_out, x).square().sum())
        products.append(
            torch.func.vmap(lambda v, gradient=gradient: torch.func.jvp(gradient, (angles,), (v,))[1])(vectors)
        )
    assert torch.allclose(products[1], products[0], rtol=0, atol=1e-9)


def test_a_batch_of_heater_settings_on_one_chip_gives_each_setting_s_layer() -> None:
    chip = chip_params(MZISimConfig(), 5, seed=2)
    volts = torch.stack([_random_volts(5, seed) for seed in range(3)])
    x = torch.rand(4, 5, dtype=D)
    batched = mesh_layer(chip, x, volts)
    assert batched.shape == (3, 4, 5)
    for k in range(3):
        assert torch.allclose(batched[k], mesh_layer(chip, x, volts[k]), rtol=0, atol=1e-12)


def test_a_chip_changed_in_place_is_not_served_stale_coupler_terms() -> None:
    """The chip's coupler products and offsets are cached per chip; an in-place change must reach the mesh."""
    model = MZIMeshModel(chip_params(MZISimConfig(), 4, seed=1))
    shifts = torch.rand(12, dtype=D)
    x = torch.rand(3, 4, dtype=D)
    before = model.phase_layer(x, shifts)
    with torch.no_grad():
        model.split_in.add_(0.2)
        model.phi_offset.sub_(0.3)
    changed = model.phase_layer(x, shifts)
    fresh = MZIMeshModel(MZIChipParams(**{k: v.clone() for k, v in model.params.tensors().items()}))
    assert not torch.allclose(changed, before)
    assert torch.allclose(changed, fresh.phase_layer(x, shifts), rtol=0, atol=1e-12)
