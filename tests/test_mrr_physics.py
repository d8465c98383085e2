"""MRR weight-bank physics (labsat.physics.mrr): line shape, tuning, crosstalk, drift, tiling, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from labsat.physics import mrr as physics
from labsat.physics.compute import default_device
from labsat.physics.mrr import (
    MRRBankModel,
    MRRChipParams,
    bank_weights,
    drop_transmission,
    from_tiles,
    logical_readout,
    logical_weights,
    lorentz,
    modulator_power_mw,
    modulator_volts_for,
    resonance_nm,
    sat_reduced_weight,
    thermal,
    thermal_kernel,
    to_tiles,
)

F64 = torch.float64


def make_params(
    rows: int = 4,
    cols: int = 5,
    batch: tuple[int, ...] = (),
    seed: int = 0,
    spacing_nm: float = 0.8,
    spectral: bool = False,
) -> MRRChipParams:
    """A chip with scattered parameters, rings resting 0.6 nm blue of their channels."""
    generator = torch.Generator().manual_seed(seed)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*batch, *shape, generator=generator, dtype=F64)

    channels = 1550 + spacing_nm * torch.arange(cols, dtype=F64)
    return MRRChipParams(
        channel_wavelength_nm=channels.expand(*batch, cols).clone(),
        rest_resonance_nm=channels - 0.6 + 0.05 * noise(rows, cols),
        fwhm_nm=0.3 * (1 + 0.03 * noise(rows, cols)),
        drop_depth=0.95 + 0.02 * noise(rows, cols),
        efficiency_nm_per_mw=0.2 * (1 + 0.05 * noise(rows, cols)),
        heater_resistance_ohm=1000 * (1 + 0.03 * noise(rows, cols)),
        crosstalk_kernel=thermal_kernel(0.08, 0.04, 0.02, 0.3, dtype=F64),
        modulator_v_pi=2.0 * (1 + 0.02 * noise(cols)),
        input_power_mw=1.0 + 0.05 * noise(cols),
        readout_volts_per_mw=0.5 * (1 + 0.02 * noise(rows)),
        readout_offset_v=0.002 + 0.001 * noise(rows),
        spectral_crosstalk=spectral,
    )


def composed_weights(params: MRRChipParams, volts: torch.Tensor, delta_t_k: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The textbook chain, op by op with plain autograd: the reference for the fused autograd node."""
    detuning = params.channel_wavelength_nm.unsqueeze(-2) - resonance_nm(params, volts, delta_t_k)
    return 2 * drop_transmission(detuning, params.fwhm_nm, params.drop_depth) - 1


def test_lorentzian_peaks_at_depth_and_halves_at_half_width() -> None:
    fwhm, depth = torch.tensor(0.3, dtype=F64), torch.tensor(0.9, dtype=F64)
    detuning = torch.linspace(-2, 2, 401, dtype=F64)
    drop = drop_transmission(detuning, fwhm, depth)
    assert drop.max() == pytest.approx(0.9) and drop[200] == pytest.approx(0.9)
    half = drop_transmission(torch.tensor([-0.15, 0.15], dtype=F64), fwhm, depth)
    torch.testing.assert_close(half, torch.full((2,), 0.45, dtype=F64))
    torch.testing.assert_close(drop, drop.flip(0))  # symmetric in detuning
    torch.testing.assert_close(drop, 0.9 / (1 + (detuning / 0.15) ** 2))
    assert drop_transmission(torch.tensor(3.0, dtype=F64), fwhm, 1.0) < 0.003  # ten widths out: nearly nothing


@pytest.mark.parametrize("spectral", [False, True])
def test_weights_stay_within_minus_one_and_one(spectral: bool) -> None:
    params = make_params(spectral=spectral, spacing_nm=0.4)
    volts = 4 * torch.rand(64, 4, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    weights = bank_weights(params, volts)
    assert weights.min() >= -1 and weights.max() <= 1
    assert weights.max() > 0.8 and weights.min() < -0.8  # the sweep covers most of the range


def test_heater_tunes_a_ring_onto_its_channel() -> None:
    params = dataclasses.replace(make_params(), drop_depth=torch.ones(4, 5, dtype=F64))
    # Power that red-shifts ring (0, 0) exactly onto its channel, other heaters off.
    detuning = params.channel_wavelength_nm[0] - params.rest_resonance_nm[0, 0]
    power_mw = detuning / params.efficiency_nm_per_mw[0, 0]
    volts = torch.zeros(4, 5, dtype=F64)
    volts[0, 0] = torch.sqrt(power_mw * 1e-3 * params.heater_resistance_ohm[0, 0])
    weights = bank_weights(params, volts)
    assert weights[0, 0] == pytest.approx(1.0, abs=1e-9)
    assert bank_weights(params, torch.zeros(4, 5, dtype=F64)).max() < -0.8  # at rest: 0.6 nm = 4 half-widths off
    assert physics.heater_power_mw(torch.tensor(2.0), torch.tensor(1000.0)) == pytest.approx(4.0)


def test_uniform_drift_moves_every_resonance_by_80_pm_per_kelvin() -> None:
    params = make_params()
    volts = 2 * torch.rand(4, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    shift = resonance_nm(params, volts, -1.5) - resonance_nm(params, volts)
    torch.testing.assert_close(shift, torch.full_like(shift, -0.12))
    # Drift acts on the weights exactly as moving every rest resonance by the same amount.
    moved = dataclasses.replace(params, rest_resonance_nm=params.rest_resonance_nm - 0.12)
    torch.testing.assert_close(bank_weights(params, volts, -1.5), bank_weights(moved, volts))


def test_thermal_crosstalk_shifts_neighbours_by_the_configured_fraction() -> None:
    params = make_params(rows=7, cols=7)
    volts = torch.zeros(7, 7, dtype=F64)
    volts[3, 3] = 2.0
    power = 4.0 * 1000 / params.heater_resistance_ohm[3, 3]  # mW in ring (3, 3)
    shift = resonance_nm(params, volts) - params.rest_resonance_nm
    expected = {
        (3, 3): 1.0, (3, 4): 0.08, (3, 2): 0.08, (2, 3): 0.04, (4, 3): 0.04, (4, 4): 0.02, (2, 2): 0.02,
        (3, 5): 0.024, (5, 3): 0.012, (5, 5): 0.006, (5, 4): 0.006, (3, 6): 0.0, (0, 0): 0.0,
    }  # fmt: skip
    for (r, c), fraction in expected.items():
        assert shift[r, c].item() == pytest.approx(
            fraction * params.efficiency_nm_per_mw[r, c].item() * power.item(), abs=1e-12
        ), (r, c)


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (3, 5), (8, 8), (16, 16), (20, 24)])
def test_crosstalk_is_a_zero_padded_2d_correlation(rows: int, cols: int) -> None:
    """Coupling-matrix matmuls (small banks) and conv2d (large ones) compute the same thing."""
    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(2, 3, rows, cols, generator=generator, dtype=F64)
    kernel = torch.rand(5, 3, generator=generator, dtype=F64)
    reference = F.conv2d(maps.reshape(-1, 1, rows, cols), kernel.view(1, 1, 5, 3), padding=(2, 1))
    torch.testing.assert_close(thermal.crosstalk(maps, kernel), reference.view(2, 3, rows, cols))


def test_fused_weights_equal_the_composed_physics() -> None:
    params = make_params(batch=(3,))
    volts = 3 * torch.rand(2, 1, 4, 5, generator=torch.Generator().manual_seed(4), dtype=F64)
    delta_t = torch.tensor([0.0, -0.5, 1.0], dtype=F64).view(3, 1, 1)
    fused = bank_weights(params, volts, delta_t)
    assert fused.shape == (2, 3, 4, 5)
    torch.testing.assert_close(fused, composed_weights(params, volts, delta_t))
    power = physics.heater_power_mw(volts, params.heater_resistance_ohm)
    torch.testing.assert_close(physics.weights_from_power(params, power, delta_t), fused)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's forward-AD setup
@pytest.mark.parametrize(
    ("node", "drive_in_volts", "logical"),
    [
        (lorentz._LorentzWeights, True, False),
        (lorentz._LorentzWeights, False, False),
        (lorentz._LorentzWeights, True, True),
        (lorentz._TransformableLorentzWeights, True, True),  # same derivative code, torch.func packaging
    ],
)
def test_fused_node_gradients(node: type[torch.autograd.Function], drive_in_volts: bool, logical: bool) -> None:
    """gradcheck (first order), gradgradcheck (Hessians) and forward-mode AD of the hand-written derivatives."""
    params = make_params(rows=2, cols=3)
    generator = torch.Generator().manual_seed(5)

    def ring(t: torch.Tensor) -> torch.Tensor:  # (R, C) -> the node's grid layout (R, T=1, C)
        return t.unsqueeze(-2).clone().requires_grad_()

    inputs = [
        # A logical (3, 5) matrix tiled over the 2×3 bank, or ring maps on the grid (batch, R, T=2, C).
        (2 * torch.rand(*((3, 5) if logical else (2, 2, 2, 3)), generator=generator, dtype=F64)).requires_grad_(),
        ring(1e3 / params.heater_resistance_ohm) if drive_in_volts else None,
        (params.crosstalk_kernel + 0.01 * torch.rand(5, 5, generator=generator, dtype=F64)).requires_grad_(),
        ring(params.efficiency_nm_per_mw * 2 / params.fwhm_nm),
        ring((params.channel_wavelength_nm.unsqueeze(-2) - params.rest_resonance_nm) * 2 / params.fwhm_nm),
        ring(2 * params.drop_depth),
        torch.rand(3, generator=generator, dtype=F64).requires_grad_(),
        None,  # crosstalk coupling matrices are built from the kernel, so the kernel's gradient is checked too
        None,
        (2, 3) if logical else None,
    ]
    assert torch.autograd.gradcheck(node.apply, inputs)
    assert torch.autograd.gradgradcheck(node.apply, inputs, fast_mode=True)
    assert torch.autograd.gradcheck(node.apply, inputs, check_forward_ad=True, check_backward_ad=False, fast_mode=True)


def test_hessian_vector_products_match_the_composed_model() -> None:
    """Sharpness analysis differentiates twice in control space; the fused node must support it."""
    params = make_params()
    volts = 2 * torch.rand(4, 5, generator=torch.Generator().manual_seed(6), dtype=F64)
    direction = torch.randn(4, 5, generator=torch.Generator().manual_seed(7), dtype=F64)

    def fused_loss(v: torch.Tensor) -> torch.Tensor:
        return bank_weights(params, v).square().sum()

    def composed_loss(v: torch.Tensor) -> torch.Tensor:
        return composed_weights(params, v).square().sum()

    expected = torch.func.jvp(torch.func.grad(composed_loss), (volts,), (direction,))[1]
    torch.testing.assert_close(torch.func.jvp(torch.func.grad(fused_loss), (volts,), (direction,))[1], expected)
    leaf = volts.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(fused_loss(leaf), leaf, create_graph=True)
    (hvp,) = torch.autograd.grad(gradient, leaf, direction)
    torch.testing.assert_close(hvp, expected)


def test_modulator_transfer_and_its_inverse() -> None:
    params = make_params()
    v_pi = params.modulator_v_pi
    torch.testing.assert_close(modulator_power_mw(params, torch.zeros(1, 5, dtype=F64)), torch.zeros(1, 5, dtype=F64))
    torch.testing.assert_close(modulator_power_mw(params, v_pi.unsqueeze(0)), params.input_power_mw.unsqueeze(0))
    half = modulator_power_mw(params, (v_pi / 2).unsqueeze(0))
    torch.testing.assert_close(half, params.input_power_mw.unsqueeze(0) / 2)  # sin²(π/4)
    x = torch.rand(16, 5, generator=torch.Generator().manual_seed(8), dtype=F64)
    torch.testing.assert_close(modulator_power_mw(params, modulator_volts_for(params, x)), x * params.input_power_mw)


def test_sat_reduced_model_is_the_bare_ring_with_opposite_sign() -> None:
    fwhm = torch.full((1, 5), 0.3, dtype=F64)
    params = dataclasses.replace(
        make_params(rows=1), fwhm_nm=fwhm, drop_depth=torch.ones(1, 5, dtype=F64),
        crosstalk_kernel=torch.ones(1, 1, dtype=F64),
    )  # fmt: skip
    volts = 2 * torch.rand(1, 5, generator=torch.Generator().manual_seed(9), dtype=F64)
    for delta_t in (0.0, -1.0, 2.0):
        x = resonance_nm(params, volts, delta_t) - params.channel_wavelength_nm  # x = λ_res − λ_c = −δ
        torch.testing.assert_close(sat_reduced_weight(x, gamma=0.15), -bank_weights(params, volts, delta_t))
    assert sat_reduced_weight(torch.tensor(0.0)) == -1  # on resonance the SAT weight is −1
    assert sat_reduced_weight(torch.tensor(0.15)) == pytest.approx(0.0)  # zero at one half-width


def test_tiles_round_trip_with_zero_padding() -> None:
    matrix = torch.arange(10 * 7, dtype=F64).view(10, 7) + 1
    tiles = to_tiles(matrix, 4, 3)
    assert tiles.shape == (3, 3, 4, 3)
    torch.testing.assert_close(tiles[1, 2], F.pad(matrix[4:8, 6:7], (0, 2)))
    assert tiles[2, 2, 2:].abs().sum() == 0 and tiles[2, 2, :, 1:].abs().sum() == 0
    torch.testing.assert_close(from_tiles(tiles, 10, 7), matrix)


def test_logical_layer_is_the_bank_reprogrammed_tile_by_tile() -> None:
    params = make_params()
    controls = 3 * torch.rand(9, 12, generator=torch.Generator().manual_seed(10), dtype=F64)
    x = torch.rand(6, 12, generator=torch.Generator().manual_seed(11), dtype=F64)
    weights = logical_weights(params, controls)
    expected_readout = torch.zeros(6, 9, dtype=F64)
    model = MRRBankModel(params)
    for r0 in range(0, 9, 4):
        for c0 in range(0, 12, 5):
            tile = torch.zeros(4, 5, dtype=F64)
            block = controls[r0 : r0 + 4, c0 : c0 + 5]
            tile[: block.shape[0], : block.shape[1]] = block
            bank = bank_weights(params, tile)[: block.shape[0], : block.shape[1]]
            torch.testing.assert_close(weights[r0 : r0 + 4, c0 : c0 + 5], bank)
            inputs = F.pad(x[:, c0 : c0 + 5], (0, 5 - block.shape[1]))
            expected_readout[:, r0 : r0 + 4] += model(inputs, tile)[:, : block.shape[0]]
    torch.testing.assert_close(model.layer(x, controls), x @ weights.T)
    torch.testing.assert_close(model.readout(x, controls), expected_readout)
    with pytest.raises(ValueError, match="readout"):
        model(x, controls)


def test_chip_population_broadcasts_like_single_chips() -> None:
    population = make_params(batch=(3,))
    controls = 3 * torch.rand(9, 12, generator=torch.Generator().manual_seed(12), dtype=F64)
    x = torch.rand(6, 12, generator=torch.Generator().manual_seed(13), dtype=F64)
    readout = logical_readout(population, x, controls)
    weights = logical_weights(population, controls)
    assert readout.shape == (3, 6, 9) and weights.shape == (3, 9, 12)
    for k in range(3):
        chip = population.select(k)
        torch.testing.assert_close(readout[k], logical_readout(chip, x, controls))
        torch.testing.assert_close(weights[k], logical_weights(chip, controls))
    stacked = MRRChipParams.stack([population.select(k) for k in range(3)])
    torch.testing.assert_close(stacked.rest_resonance_nm, population.rest_resonance_nm)


def test_model_fits_physical_parameters_through_the_fused_node() -> None:
    params = make_params()
    model = MRRBankModel(params, trainable={"rest_resonance_nm", "crosstalk_kernel", "fwhm_nm"})
    assert {name for name, _ in model.named_parameters()} == {"rest_resonance_nm", "crosstalk_kernel", "fwhm_nm"}
    controls = 3 * torch.rand(4, 5, generator=torch.Generator().manual_seed(14), dtype=F64)
    x = torch.rand(8, 5, generator=torch.Generator().manual_seed(15), dtype=F64)
    model(x, controls).square().sum().backward()
    reference = {name: getattr(params, name).clone().requires_grad_() for name in ("rest_resonance_nm", "fwhm_nm")}
    composed = dataclasses.replace(params, **reference)
    power = x * composed.input_power_mw
    physics.balanced_readout(composed, composed_weights(composed, controls), power).square().sum().backward()
    for name, leaf in reference.items():
        torch.testing.assert_close(getattr(model, name).grad, leaf.grad)
    assert model.params.rest_resonance_nm is model.rest_resonance_nm
    with pytest.raises(ValueError, match="unknown chip parameters"):
        MRRBankModel(params, trainable={"resistance"})


def test_spectral_crosstalk_lets_a_neighbour_filter_the_channel() -> None:
    far = make_params(spacing_nm=20.0, spectral=True)  # tails are negligible 20 nm away
    volts = 2 * torch.rand(4, 5, generator=torch.Generator().manual_seed(16), dtype=F64)
    torch.testing.assert_close(
        bank_weights(far, volts), bank_weights(dataclasses.replace(far, spectral_crosstalk=False), volts), atol=1e-3,
        rtol=0,
    )  # fmt: skip
    near = make_params(spacing_nm=1.6, spectral=True)
    diagonal = dataclasses.replace(near, spectral_crosstalk=False)
    # Tune ring (0, 0) onto channel 1: it now drops channel 1 as well, pushing w[0, 1] towards +1.
    heat = (near.channel_wavelength_nm[1] - near.rest_resonance_nm[0, 0]) / near.efficiency_nm_per_mw[0, 0]
    tuned = torch.zeros(4, 5, dtype=F64)
    tuned[0, 0] = torch.sqrt(heat * 1e-3 * near.heater_resistance_ohm[0, 0])
    assert bank_weights(near, tuned)[0, 1] > bank_weights(diagonal, tuned)[0, 1] + 0.5


def test_params_validate_shapes_and_move_between_devices() -> None:
    params = make_params()
    with pytest.raises(ValueError, match="fwhm_nm"):
        dataclasses.replace(params, fwhm_nm=torch.ones(3, 5))
    with pytest.raises(ValueError, match="odd"):
        dataclasses.replace(params, crosstalk_kernel=torch.ones(2, 3))
    moved = params.to(default_device(), torch.float32)
    assert moved.rest_resonance_nm.dtype == torch.float32 and moved.rest_resonance_nm.device == default_device()


def test_cached_chip_constants_follow_in_place_edits() -> None:
    params = make_params()
    volts = 2 * torch.rand(4, 5, generator=torch.Generator().manual_seed(17), dtype=F64)
    before = bank_weights(params, volts)
    torch.testing.assert_close(bank_weights(params, volts), before)  # served from the cache
    with torch.no_grad():
        params.rest_resonance_nm.add_(0.1)  # an in-place edit must not leave stale constants behind
    torch.testing.assert_close(bank_weights(params, volts), composed_weights(params, volts))
    assert not torch.allclose(bank_weights(params, volts), before)
    # Mixed precision: float32 heater powers on a float64 chip still agree with the float64 result.
    power = physics.heater_power_mw(volts, params.heater_resistance_ohm)
    mixed = physics.weights_from_power(params, power.float())
    torch.testing.assert_close(mixed, physics.weights_from_power(params, power), rtol=0, atol=1e-5)


def test_default_device_prefers_cuda_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABSAT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device().type == "cpu"
    monkeypatch.setenv("LABSAT_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device().type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_physics_runs_on_cuda() -> None:
    params = make_params().to("cuda")
    volts = torch.rand(4, 5, device="cuda", dtype=F64, requires_grad=True)
    bank_weights(params, volts).sum().backward()
    torch.testing.assert_close(bank_weights(params, volts).cpu(), bank_weights(make_params(), volts.detach().cpu()))


@pytest.mark.parametrize(
    ("out_features", "in_features", "rows", "cols", "kernel"),
    [
        (10, 64, 8, 8, thermal_kernel(0.1, 0.05, 0.02, dtype=F64)),  # rank 2, a partial tile row
        (9, 12, 4, 5, thermal_kernel(0.08, 0.04, 0.02, 0.3, dtype=F64)),  # 5×5 with second neighbours
        (7, 11, 3, 4, torch.rand(5, 3, generator=torch.Generator().manual_seed(21), dtype=F64)),  # full rank
        (1, 1, 2, 2, thermal_kernel(0.1, 0.05, 0.02, dtype=F64)),
    ],
)
def test_layer_coupling_is_the_tiled_crosstalk(
    out_features: int, in_features: int, rows: int, cols: int, kernel: torch.Tensor
) -> None:
    """The layer's two-matmul operator equals the zero-padded correlation of every tile, and its adjoint."""
    generator = torch.Generator().manual_seed(22)
    power = torch.rand(3, out_features, in_features, generator=generator, dtype=F64)
    grad = torch.rand(3, out_features, in_features, generator=generator, dtype=F64)
    operator = thermal.layer_coupling(kernel, rows, cols, out_features, in_features)

    def tiled(maps: torch.Tensor, adjoint: bool) -> torch.Tensor:
        grid = physics.tiles.logical_grid(maps, rows, cols)
        heat = thermal.crosstalk_grid(grid, kernel.flip(0, 1) if adjoint else kernel)
        return physics.tiles.from_logical_grid(heat, out_features, in_features)

    torch.testing.assert_close(operator.heat(power), tiled(power, adjoint=False), rtol=0, atol=1e-12)
    torch.testing.assert_close(operator.adjoint(grad), tiled(grad, adjoint=True), rtol=0, atol=1e-12)
    assert torch.dot(operator.heat(power).flatten(), grad.flatten()).item() == pytest.approx(
        torch.dot(power.flatten(), operator.adjoint(grad).flatten()).item(), rel=1e-12
    )


@pytest.mark.parametrize("delta_t_k", [0.0, -1.5])
def test_small_layers_take_the_layer_coupling_with_the_ring_grids_values_and_gradients(
    monkeypatch: pytest.MonkeyPatch, delta_t_k: float
) -> None:
    """A fixed chip's small layer runs its crosstalk as two matmuls; weights, readout and gradients are unchanged."""
    params = make_params()
    generator = torch.Generator().manual_seed(23)
    controls = 3 * torch.rand(9, 12, generator=generator, dtype=F64)
    x = torch.rand(6, 12, generator=generator, dtype=F64)
    probe = torch.rand(6, 9, generator=generator, dtype=F64)
    calls: list[int] = []
    heat = thermal.LayerCoupling.heat
    monkeypatch.setattr(thermal.LayerCoupling, "heat", lambda self, maps: calls.append(1) or heat(self, maps))

    def outputs() -> tuple[torch.Tensor, ...]:
        leaf = controls.clone().requires_grad_()
        readout = logical_readout(params, x, leaf, delta_t_k)
        (gradient,) = torch.autograd.grad((readout * probe).sum(), leaf)
        return logical_weights(params, controls, delta_t_k), readout.detach(), gradient

    layer = outputs()
    assert calls, "the small layer did not take the layer coupling"
    calls.clear()
    monkeypatch.setattr(thermal, "LAYER_COUPLING_MAX_MACS", 0)
    grid = outputs()
    assert not calls
    for ours, reference in zip(layer, grid, strict=True):
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)


def test_the_layer_coupling_refuses_a_kernel_derivative() -> None:
    """It is built for a fixed kernel; asked for the kernel's gradient it says so instead of a wrong number."""
    params = make_params()
    kernel = params.crosstalk_kernel.clone().requires_grad_()
    operator = thermal.layer_coupling(kernel, params.rows, params.cols, 4, 5)
    ring = torch.ones(4, 5, dtype=F64)
    drive = torch.rand(4, 5, dtype=F64)
    inputs = (drive, ring, kernel, ring, ring, ring, ring, operator, operator, None)
    with pytest.raises(ValueError, match="fixed crosstalk kernel"):
        lorentz._LorentzWeights.apply(*inputs).sum().backward()


def test_constants_first_derived_inside_a_transform_are_not_kept_past_it() -> None:
    """A chip whose first layer call runs under ``torch.func`` still works in the next transform and outside."""
    params = make_params()
    controls = 2 * torch.rand(9, 12, generator=torch.Generator().manual_seed(24), dtype=F64)
    direction = torch.ones_like(controls)

    def loss(v: torch.Tensor) -> torch.Tensor:
        return logical_weights(params, v).square().sum()

    first = torch.func.jvp(torch.func.grad(loss), (controls,), (direction,))[1]
    again = torch.func.jvp(torch.func.grad(loss), (controls,), (direction,))[1]
    torch.testing.assert_close(again, first)
    torch.testing.assert_close(logical_weights(params, controls), logical_weights(make_params(), controls))
