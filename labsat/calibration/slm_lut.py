"""SLM LUT calibration: each mask SLM's gray-level → phase curve, measured on the bench through its own detectors.

**Measurement (split screen).** The input SLM is fully on and every other mask shows a uniform frame (a
uniform phase is a global phase: it changes no intensity). Mask ``l`` shows gray 0 on one half and gray
``g`` on the other; the detector regions see the light of the two halves interfere, so their readings
depend on ``g`` only through ``Δ(g) = φ(g) − φ(0)``. Two split orientations (left/right, top/bottom) give
twenty readings per gray level (one gain and offset per detector), enough to place ``Δ`` on the whole
circle without a sign ambiguity.

**Fit (template matching).** The design twin predicts the region powers ``F(Δ)`` of the same split frames
for ``Δ`` on a fine grid. Everything after the *last* mask is linear in the field, so there ``F`` is exactly
``A + B·cos Δ + C·sin Δ``; the intensity threshold after a later mask makes an earlier mask's response
non-sinusoidal, so the twin's curve (which includes it) is used for every mask. Each reading's gain and
dark offset are unknown and fitted with ``Δ``: alternately each level's ``Δ`` by its nearest template
point (refined parabolically between points) and each reading's gain and offset by least squares, starting
from the bench file's nominal readout. ``Δ(g)`` is then unwrapped from gray 0 upwards (adjacent measured
levels must differ by less than π, true of any LC SLM at 8 bits).

The twin must know what it is built from, the optical geometry and the masks' alignment; the LUT, the
detector gains and offsets and the laser power are what the fit leaves free. The result is a list of
:class:`~labsat.physics.slm.PhaseLUT` (one per mask SLM) for :meth:`D2NNSystem.use_luts
<labsat.systems.d2nn.D2NNSystem.use_luts>`; ``labsat calibrate`` stores them as a D2NN calibration record
(:mod:`labsat.calibration.d2nn_record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from labsat.calibration.session import Progress
from labsat.errors import LabsatError
from labsat.physics.diffractive import DiffractiveModel
from labsat.physics.slm import LEVELS, PhaseLUT, wrap
from labsat.readout import QueryStats
from labsat.systems.d2nn import D2NNSystem


@dataclass(frozen=True)
class LUTCalibration:
    """Fitted LUTs (one per mask SLM, in ``system.masks`` order), how well they fit, and what they cost."""

    luts: list[PhaseLUT]
    residual: list[float]
    """Per mask: RMS of (reading − fitted model) over the RMS spread of the readings (0: perfect fit)."""
    cost: QueryStats


def calibrate_slm_luts(
    system: D2NNSystem,
    *,
    step: int = 1,
    repeats: int = 4,
    template_points: int = 256,
    iterations: int = 6,
    progress: Progress | None = None,
) -> LUTCalibration:
    """Measure and fit every mask SLM's LUT (see the module docstring).

    ``step`` measures every ``step``-th gray level of each SLM's allowed range ``frame_limits.gray`` (its lowest
    and highest level always) and interpolates between them; levels outside the range are never shown (their
    table entries hold the nearest measured phase, and the System never produces them);
    ``repeats`` detector readings are averaged per level; ``template_points`` sample ``Δ`` over one turn.
    ``progress("slm_luts", done, masks)`` hears of each mask SLM as it is finished.
    """
    if not 1 <= step < 128 or repeats < 1 or template_points < 16 or iterations < 1:
        raise LabsatError("step must be in 1..127, repeats and iterations at least 1, template_points at least 16")
    before = system.stats.copy()
    twin = system.nominal_twin()
    nominal = (system.spec.readout_volts_per_unit, system.spec.readout_dark_volts)
    luts, residuals = [], []
    masks = len(system.masks)
    for mask in range(masks):
        if progress is not None:
            progress("slm_luts", mask, masks)
        low, high = system.masks[mask].limits.gray
        grays = sorted({*range(low, high + 1, step), high})
        readings = _split_readings(system, mask, grays, repeats)
        template = _split_template(twin, system, mask, template_points)
        delta, residual = _fit(readings, template, nominal, iterations)
        phase = _unwrap(delta)
        full = _interpolate(torch.tensor(grays, dtype=torch.float64), phase, LEVELS)
        luts.append(PhaseLUT(full))
        residuals.append(residual)
    if progress is not None:
        progress("slm_luts", masks, masks)
    return LUTCalibration(luts, residuals, system.stats.since(before))


def _halves(grid: int, device: torch.device) -> list[Tensor]:
    """The two split orientations: the right half and the bottom half of a mask, as boolean ``(N, N)``."""
    half = torch.zeros(grid, grid, dtype=torch.bool, device=device)
    right, bottom = half.clone(), half.clone()
    right[:, grid // 2 :] = True
    bottom[grid // 2 :, :] = True
    return [right, bottom]


def _split_readings(system: D2NNSystem, mask: int, grays: list[int], repeats: int) -> Tensor:
    """Averaged detector volts ``(levels, 2, 10)``: per gray level, both orientations' readings.

    The reference half and every other mask show their SLM's lowest allowed gray level (uniform: a global phase).
    """
    features = system.spec.input_side**2
    full_on = system.input_frames(torch.ones(repeats, features, device=system.torch_device))
    lowest = torch.tensor([slm.limits.gray[0] for slm in system.masks], dtype=torch.uint8, device=system.torch_device)
    orientations = []
    for half in _halves(system.optics.grid, system.torch_device):
        rows = []
        for gray in grays:
            frames = lowest.view(-1, 1, 1).expand(system.control_shape).clone()
            frames[mask][half] = gray
            system.program(frames)
            rows.append(system.measure_volts(full_on).to(torch.float64).mean(0))
        orientations.append(torch.stack(rows))
    return torch.stack(orientations, dim=1).cpu()


@torch.no_grad()
def _split_template(twin: DiffractiveModel, system: D2NNSystem, mask: int, points: int) -> Tensor:
    """The twin's region powers ``(points, 2, 10)`` for ``Δ = 2π·t/points``, laid out as the readings."""
    features = system.spec.input_side**2
    full_on = torch.ones(1, features, device=system.torch_device)
    orientations = []
    for half in _halves(system.optics.grid, system.torch_device):
        rows = []
        for t in range(points):
            controls = torch.zeros(system.control_shape, device=system.torch_device)
            controls[mask][half] = 2 * math.pi * t / points
            rows.append(twin.layer(full_on, controls)[0])
        orientations.append(torch.stack(rows))
    return torch.stack(orientations, dim=1).to("cpu", torch.float64)


def _fit(readings: Tensor, template: Tensor, nominal: tuple[float, float], iterations: int) -> tuple[Tensor, float]:
    """``Δ`` per level ``(levels,)`` in rad and the relative residual, for ``readings ≈ offset + gain·F(Δ)``.

    ``readings`` ``(levels, 2, K)`` and ``template`` ``(points, 2, K)``: each of the ``K`` detectors has one
    gain and one offset, whichever split orientation it looks at.
    """
    points, detectors = template.shape[0], template.shape[-1]
    flat = readings.flatten(1)
    gain = torch.full((detectors,), nominal[0], dtype=torch.float64)
    offset = torch.full_like(gain, nominal[1])
    for _ in range(iterations):
        cost = torch.cdist(flat, (offset + gain * template).flatten(1)).square()  # (levels, points)
        best = cost.argmin(dim=1)
        rows = torch.arange(readings.shape[0])
        before, at, after = (cost[rows, (best + k) % points] for k in (-1, 0, 1))
        curvature = (before - 2 * at + after).clamp_min(1e-300)
        index = best + (0.5 * (before - after) / curvature).clamp(-0.5, 0.5)
        at_delta = _template_at(template, index)
        gain, offset = _line_fit(at_delta.reshape(-1, detectors), readings.reshape(-1, detectors))
    residual = (readings - offset - gain * at_delta).square().mean().sqrt()
    spread = (readings - readings.mean(0)).square().mean().sqrt()
    return index * (2 * math.pi / points), float(residual / spread)


def _template_at(template: Tensor, index: Tensor) -> Tensor:
    """The template ``(points, ...)`` linearly interpolated at fractional, circular points ``index`` ``(levels,)``."""
    points = template.shape[0]
    low = torch.floor(index)
    frac = (index - low).view(-1, *([1] * (template.dim() - 1)))
    low = low.long() % points
    return (1 - frac) * template[low] + frac * template[(low + 1) % points]


def _line_fit(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per column, least-squares ``y ≈ offset + gain·x``; returns ``(gain, offset)``."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    gain = ((x - x_mean) * (y - y_mean)).sum(0) / (x - x_mean).square().sum(0).clamp_min(1e-300)
    return gain, y_mean - gain * x_mean


def _unwrap(delta: Tensor) -> Tensor:
    """Phase relative to the first level, each step taken as the shortest way round the circle."""
    steps = wrap(torch.diff(delta))
    return torch.cat([torch.zeros(1, dtype=delta.dtype), torch.cumsum(steps, 0)])


def _interpolate(grays: Tensor, phase: Tensor, levels: int) -> Tensor:
    """``phase`` measured at ``grays`` (sorted), linearly at every level; held at the ends outside them."""
    if len(grays) == 1:
        return phase[:1].expand(levels).clone()
    every = torch.arange(levels, dtype=torch.float64)
    upper = torch.searchsorted(grays, every).clamp(1, len(grays) - 1)
    lower = upper - 1
    frac = ((every - grays[lower]) / (grays[upper] - grays[lower])).clamp(0.0, 1.0)
    return phase[lower] + frac * (phase[upper] - phase[lower])
