"""D2NN optics: angular-spectrum propagation, lenses, mask misalignment, detectors and the layer."""

from __future__ import annotations

import math

import pytest
import torch

from labsat.physics.diffractive import (
    CLASSES,
    DiffractiveModel,
    DiffractiveOptics,
    Misalignment,
    detector_masks,
    lens_transmittance,
    mask_transmittance,
    propagate,
    transfer_function,
)

CPU = torch.device("cpu")
GRID, PIXEL_UM, WAVELENGTH_NM = 64, 2.0, 532.0


def coords_um(grid: int = GRID) -> torch.Tensor:
    return (torch.arange(grid, dtype=torch.float64) - (grid - 1) / 2) * PIXEL_UM


def gaussian(waist_um: float, centre_um: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """A Gaussian beam at its waist: intensity ∝ exp(−2r²/w²)."""
    c = coords_um()
    r2 = (c[None, :] - centre_um[0]).square() + (c[:, None] - centre_um[1]).square()
    return torch.exp(-r2 / waist_um**2).to(torch.complex64)


def power(field: torch.Tensor) -> float:
    return float(field.abs().square().sum())


def rms_width_um(field: torch.Tensor) -> float:
    """``w = 2σ_x`` of the intensity: the 1/e² radius for a Gaussian beam."""
    intensity = field.abs().square().double()
    profile = intensity.sum(0) / intensity.sum()
    c = coords_um()
    mean = (profile * c).sum()
    return float(2 * ((profile * (c - mean).square()).sum()).sqrt())


def step(distance_mm: float) -> torch.Tensor:
    return transfer_function(GRID, PIXEL_UM, WAVELENGTH_NM, distance_mm, CPU)


def test_propagation_conserves_energy_of_a_centred_beam() -> None:
    beam = gaussian(8.0)
    assert power(propagate(beam, step(0.5))) == pytest.approx(power(beam), rel=1e-4)


def test_gaussian_beam_width_matches_the_analytic_spreading() -> None:
    waist, z_um = 8.0, 500.0
    rayleigh_um = math.pi * waist**2 / (WAVELENGTH_NM * 1e-3)
    expected = waist * math.sqrt(1 + (z_um / rayleigh_um) ** 2)
    assert rms_width_um(gaussian(waist)) == pytest.approx(waist, rel=0.01)
    assert rms_width_um(propagate(gaussian(waist), step(z_um / 1e3))) == pytest.approx(expected, rel=0.02)


def test_lens_focuses_a_wide_beam_to_the_diffraction_limited_waist() -> None:
    waist, focal_mm = 25.0, 1.0
    lens = lens_transmittance(GRID, PIXEL_UM, WAVELENGTH_NM, focal_mm, CPU)
    focus = propagate(gaussian(waist) * lens, step(focal_mm))
    expected = WAVELENGTH_NM * 1e-3 * focal_mm * 1e3 / (math.pi * waist)
    assert rms_width_um(focus) == pytest.approx(expected, rel=0.05)
    peak = torch.nonzero(focus.abs() == focus.abs().max())[0]
    assert all(GRID // 2 - 1 <= int(i) <= GRID // 2 for i in peak)  # on the axis (between the middle pixels)


def test_zero_padding_stops_light_wrapping_around() -> None:
    beam = gaussian(3.0, centre_um=(-54.0, 0.0))  # near the left edge, diverging fast
    right_edge = slice(GRID - GRID // 8, GRID)
    padded = propagate(beam, step(1.0))
    circular = propagate(beam, transfer_function(GRID, PIXEL_UM, WAVELENGTH_NM, 1.0, CPU, circular=True))
    assert power(circular[:, right_edge]) > 0.05 * power(beam)  # what the reference's unpadded FFT does
    assert power(padded[:, right_edge]) < 1e-3 * power(beam)  # only the Gaussian tail that really gets there


def test_transfer_functions_are_cached() -> None:
    assert step(0.5) is step(0.5)


PHASE = 2 * math.pi * torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(0))


def test_aligned_masks_are_exp_i_phase() -> None:
    expected = torch.polar(torch.ones_like(PHASE), PHASE)
    assert torch.equal(mask_transmittance(PHASE, Misalignment()), expected)
    full_turn = mask_transmittance(PHASE, Misalignment(rotation_deg=360.0))  # through the resampling path
    torch.testing.assert_close(full_turn, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("quarter_turns", [1, 2, -1])
def test_right_angle_rotations_equal_rot90(quarter_turns: int) -> None:
    rotated = mask_transmittance(PHASE, Misalignment(rotation_deg=90.0 * quarter_turns))
    expected = torch.rot90(torch.polar(torch.ones_like(PHASE), PHASE), quarter_turns, dims=(-2, -1))
    torch.testing.assert_close(rotated, expected, atol=1e-5, rtol=0)


def test_whole_pixel_shift_moves_the_mask_and_passes_light_outside_the_slm() -> None:
    shifted = mask_transmittance(PHASE, Misalignment(shift_px=(2.0, -1.0)))
    original = torch.polar(torch.ones_like(PHASE), PHASE)
    torch.testing.assert_close(shifted[:, :-1, 2:], original[:, 1:, :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(shifted[:, :, :2], torch.ones_like(shifted[:, :, :2]), atol=1e-6, rtol=0)


def test_scale_two_magnifies_about_the_centre() -> None:
    scaled = mask_transmittance(PHASE, Misalignment(scale=2.0))
    assert scaled.abs().max() <= 1 + 1e-5  # bilinear blends of unit phasors never gain
    assert not torch.allclose(scaled, mask_transmittance(PHASE, Misalignment()))
    with pytest.raises(ValueError, match="scale"):
        Misalignment(scale=0.0)


def test_misalignment_offsets_add_up() -> None:
    moved = Misalignment(rotation_deg=0.5).moved({"rotation": 0.25, "shift_y": 1.0, "scale": 0.1})
    assert moved == Misalignment(rotation_deg=0.75, shift_px=(0.0, 1.0), scale=1.1)
    with pytest.raises(ValueError, match="unknown"):
        Misalignment().moved({"tilt": 1.0})


SMALL = DiffractiveOptics(grid=32)


def test_detector_layout_scales_with_the_grid() -> None:
    for optics, side in ((DiffractiveOptics(), 9), (SMALL, 2)):
        masks = detector_masks(optics)
        assert masks.shape == (CLASSES, optics.grid, optics.grid)
        assert masks.sum((1, 2)).tolist() == [side * side] * CLASSES
        assert masks.sum(0).max() == 1  # no pixel in two regions
    assert DiffractiveOptics().detector_corners()[4] == (59, 50)


def digits(batch: int = 3) -> torch.Tensor:
    return torch.rand(batch, 64, generator=torch.Generator().manual_seed(1))


def test_layer_gives_ten_fractions_of_the_input_power() -> None:
    model = DiffractiveModel(SMALL, device=CPU)
    powers = model.layer(digits(), PHASE)
    assert powers.shape == (3, CLASSES)
    assert bool((powers >= 0).all()) and bool((powers.sum(1) <= 1).all())
    lossless = DiffractiveModel(DiffractiveOptics(nonlinearity=False), device=CPU)  # the reference 128 grid
    intensity, input_power = lossless.detector_intensity(digits(), torch.zeros(2, 128, 128))
    assert float((intensity.sum((1, 2)) / input_power).min()) > 0.9  # flat masks: a 4f image, little light lost


def test_gradients_are_finite_for_dark_inputs_and_pixels() -> None:
    model = DiffractiveModel(SMALL, device=CPU)
    x = torch.cat([torch.zeros(1, 64), digits(1)]).requires_grad_(True)
    phase = PHASE.clone().requires_grad_(True)
    model.layer(x, phase).sum().backward()
    assert bool(torch.isfinite(phase.grad).all()) and bool(torch.isfinite(x.grad).all())


def test_response_is_continuous_in_small_rotations() -> None:
    """Bilinear resampling: 0.01° already changes the output, twice as much at 0.02° (nearest: not at all)."""
    model = DiffractiveModel(SMALL, device=CPU)
    x = digits()
    base = model.layer(x, PHASE)
    change = [
        float((model.with_misalignment(Misalignment(rotation_deg=a)).layer(x, PHASE) - base).norm())
        for a in (0.01, 0.02)
    ]
    assert change[0] > 1e-4 * float(base.norm())
    assert change[1] / change[0] == pytest.approx(2.0, rel=0.2)


def test_with_misalignment_shares_the_constants() -> None:
    model = DiffractiveModel(SMALL, device=CPU)
    other = model.with_misalignment(Misalignment(rotation_deg=1.0))
    assert other._constants is model._constants and other.misalignment.rotation_deg == 1.0


def test_wrong_control_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="mask phases"):
        DiffractiveModel(SMALL, device=CPU).layer(digits(), torch.zeros(1, 32, 32))


def test_input_power_is_that_of_the_upscaled_image() -> None:
    """Nearest upscaling shows each of the 8×8 pixels as a 4×4 block of the 32-px image: 16× its intensity."""
    x = digits()
    for upsampling in ("nearest", "bilinear"):
        model = DiffractiveModel(DiffractiveOptics(grid=64, input_upsampling=upsampling), device=CPU)
        field, input_power = model.input_field(x)
        assert field.shape == (3, 64, 64)
        if upsampling == "nearest":
            torch.testing.assert_close(input_power, 16 * x.sum(1))
        assert float(power(field)) <= float(input_power.sum()) * (1 + 1e-4)  # the aperture only loses light


def test_optics_refuse_unknown_options() -> None:
    with pytest.raises(ValueError, match="propagation"):
        DiffractiveOptics(propagation="fresnel")  # type: ignore[arg-type]


def test_resized_optics_keep_the_fresnel_numbers() -> None:
    small = DiffractiveOptics(input_size=60).resized(32)
    assert (small.grid, small.input_size, small.square_px) == (32, 15, 2)
    assert small.focal_mm == pytest.approx(5.0 / 16) and small.mask_spacing_mm == pytest.approx(2.0 / 16)
