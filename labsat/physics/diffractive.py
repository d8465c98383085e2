"""Diffractive network (D2NN) in a 4f system: differentiable optics shared by the simulator and the twin.

The geometry is the SAT paper's (Xu et al., §2.3 of the digest): a coherent input image, a lens, two phase
masks on SLMs near the lens's Fourier plane with an intensity nonlinearity after each, a second lens and a
camera whose ten square regions are the ten class outputs::

    input ─5 mm─ lens₁ ─4 mm─ mask₁ (+nl) ─2 mm─ mask₂ (+nl) ─4 mm─ lens₂ ─5 mm─ detectors     (f = 5 mm)

Free-space steps use the band-limited angular spectrum method (Matsushima & Shimobaba, Opt. Express 2009):
the field is zero-padded to ``2N`` (the FFT's circular convolution would otherwise wrap light leaving one
side back in at the other) and the transfer function is cut off where it is undersampled. The ``N × N``
grid is also every element's aperture: light that leaves it is lost, as at the edge of a real lens or SLM.
Lenses are thin phase screens ``exp(−iπr²/(λf))``.

A phase mask ``φ`` (rad) transmits ``exp(iφ)``. A misaligned mask (rotated, shifted or scaled relative to the
optical axis, :class:`Misalignment`) is resampled **bilinearly** from its transmittance: nearest-neighbour
resampling (the reference code's) leaves the response constant until a pixel flips, so small misalignments
look harmless and finite differences in the misalignment see nothing. The real and imaginary parts are
interpolated, not the wrapped phase, which would jump at 2π.

Conventions: tensors are complex64 fields / float32 intensities on the model's device; a pixel's field is
scaled so that ``Σ|E|²`` is the power through the plane, and the detector powers are fractions of the
input power.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labsat.physics.compute import default_device
from labsat.physics.optics import CLASSES, DiffractiveOptics

DISTURBANCES = ("rotation", "shift_x", "shift_y", "scale")
"""Names of the misalignment parameters, as :meth:`Misalignment.moved` and FD-SAT know them."""

TINY = 1e-12
"""Floor under divisions by an intensity or a power (a dark pixel, an all-zero input)."""


@dataclass(frozen=True)
class Misalignment:
    """Where the phase masks sit relative to the optical axis (all masks alike, as in the SAT paper).

    ``rotation_deg`` turns a mask about the grid centre, counter-clockwise as an image is shown (row 0 at the
    top; the sense of ``torch.rot90``); ``shift_px`` moves it by ``(x, y)`` pixels (x along a row, y down the
    columns); ``scale`` magnifies it about the centre (a mask imaged onto the SLM plane at another size).
    """

    rotation_deg: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def is_identity(self) -> bool:
        return self.rotation_deg == 0 and self.shift_px == (0.0, 0.0) and self.scale == 1

    def moved(self, offsets: Mapping[str, float]) -> Misalignment:
        """This misalignment with ``offsets`` added (keys from :data:`DISTURBANCES`; ``scale`` adds too)."""
        unknown = set(offsets) - set(DISTURBANCES)
        if unknown:
            raise ValueError(f"unknown misalignment parameters {sorted(unknown)}; known: {', '.join(DISTURBANCES)}")
        shift_x, shift_y = self.shift_px
        return Misalignment(
            rotation_deg=self.rotation_deg + offsets.get("rotation", 0.0),
            shift_px=(shift_x + offsets.get("shift_x", 0.0), shift_y + offsets.get("shift_y", 0.0)),
            scale=self.scale + offsets.get("scale", 0.0),
        )

    def sampling_matrix(self, grid: int) -> Tensor:
        """``(2, 3)`` float64 map from output to input in ``affine_grid``'s normalised coordinates.

        The mask's content moves as ``p ↦ s·R·p + d``, so each output point samples the input at
        ``R⁻¹(p − d)/s``. With y pointing down the rows, a turn that looks counter-clockwise is
        ``R = [[cos, sin], [−sin, cos]]`` in ``(x, y)``, so ``R⁻¹ = [[cos, −sin], [sin, cos]]``; a shift of
        one pixel is ``2/grid``.
        """
        angle = math.radians(self.rotation_deg)
        cos, sin = math.cos(angle), math.sin(angle)
        linear = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64) / self.scale
        shift = torch.tensor(self.shift_px, dtype=torch.float64) * (2.0 / grid)
        return torch.cat([linear, (-linear @ shift).unsqueeze(1)], dim=1)


def mask_transmittance(phase: Tensor, misalignment: Misalignment) -> Tensor:
    """Complex transmittance ``(..., N, N)`` of phase masks ``(..., N, N)`` (rad) as they sit when misaligned.

    ``exp(iφ)`` is resampled bilinearly (``grid_sample`` on its real and imaginary parts): continuous in the
    misalignment and differentiable in ``φ``. Outside the SLM's active area the transmittance is 1: the
    light passes unmodulated (a flat SLM frame), so a shifted or rotated mask lets the edge of the beam
    through instead of cutting it off, and the edge pixels blend into 1 over one pixel.
    """
    transmittance = torch.polar(torch.ones_like(phase), phase)
    if misalignment.is_identity:
        return transmittance
    lead, grid = phase.shape[:-2], phase.shape[-1]
    flat = transmittance.reshape(-1, grid, grid)
    planes = torch.stack([flat.real - 1.0, flat.imag], dim=1)  # (L, 2, N, N); outside = 0 here, 1 after
    theta = misalignment.sampling_matrix(grid).to(device=phase.device, dtype=phase.dtype)
    coords = F.affine_grid(theta.expand(len(flat), 2, 3), list(planes.shape), align_corners=False)
    moved = F.grid_sample(planes, coords, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.complex(moved[:, 0] + 1.0, moved[:, 1]).reshape(*lead, grid, grid)


@functools.lru_cache(maxsize=32)
def transfer_function(
    grid: int, pixel_um: float, wavelength_nm: float, distance_mm: float, device: torch.device, circular: bool = False
) -> Tensor:
    """Band-limited angular-spectrum transfer function ``(2N, 2N)`` complex64 (unshifted FFT order).

    ``H = exp(i·2πz·(√(1/λ² − f²) − 1/λ))`` (the common phase ``e^{ikz}`` dropped: it changes no intensity
    and would cost float32 precision), zero outside ``|f_x|, |f_y| < 1/(λ√((2Δf·z)² + 1))`` with
    ``Δf = 1/(2N·dx)``, where the chirp of ``H`` is sampled more coarsely than Nyquist, and beyond the
    evanescent cut-off. Computed in float64, cached per geometry and device. ``circular``: the reference code's
    ``(N, N)`` function without the band limit (see :class:`DiffractiveOptics`).
    """
    size = grid if circular else 2 * grid
    wavelength, z = wavelength_nm * 1e-3, distance_mm * 1e3  # µm
    freq = torch.fft.fftfreq(size, d=pixel_um, dtype=torch.float64, device=device)
    fy, fx = torch.meshgrid(freq, freq, indexing="ij")
    argument = 1.0 / wavelength**2 - fx.square() - fy.square()
    phase = 2 * math.pi * z * (argument.clamp_min(0).sqrt() - 1.0 / wavelength)
    limit = math.inf if circular else 1.0 / (wavelength * math.sqrt((2 * z / (size * pixel_um)) ** 2 + 1))
    passed = (fx.abs() < limit) & (fy.abs() < limit) & (argument > 0)
    return torch.polar(passed.double(), phase).to(torch.complex64)


def propagate(field: Tensor, transfer: Tensor) -> Tensor:
    """Free-space propagation of ``field`` ``(..., N, N)`` with a ``(2N, 2N)`` :func:`transfer_function`.

    (A circular ``(N, N)`` one gives the unpadded, wrapping convolution of the reference code.)

    ``fft2(field, s=(2N, 2N))`` zero-pads at the far edges, which is all a linear convolution needs: the
    output's first ``N × N`` block never receives light that wrapped around.
    """
    grid, size = field.shape[-1], transfer.shape[-1]
    spectrum = torch.fft.fft2(field, s=(size, size)).mul_(transfer)  # in place: one 4N² buffer fewer
    return torch.fft.ifft2(spectrum)[..., :grid, :grid]


@functools.lru_cache(maxsize=32)
def lens_transmittance(
    grid: int, pixel_um: float, wavelength_nm: float, focal_mm: float, device: torch.device
) -> Tensor:
    """Thin lens ``exp(−iπr²/(λf))`` ``(N, N)`` complex64, centred between the middle pixels like the masks."""
    coords = (torch.arange(grid, dtype=torch.float64, device=device) - (grid - 1) / 2) * pixel_um
    radius2 = coords[:, None].square() + coords[None, :].square()
    phase = -math.pi * radius2 / (wavelength_nm * 1e-3 * focal_mm * 1e3)
    return torch.polar(torch.ones_like(phase), phase).to(torch.complex64)


def threshold_nonlinearity(field: Tensor) -> Tensor:
    """The reference's saturable-absorber-like threshold: ``I' = ReLU(I − mean(I)/2)``, phase kept.

    The mean runs over each sample's plane, so the threshold follows the power in the beam (the layer is
    invariant to the input power) and clears the weak scattered background between bright features. Written
    as ``E·√(ReLU(1 − t/I))`` so a dark pixel never divides by zero.
    """
    intensity = field.real.square() + field.imag.square()
    threshold = intensity.mean(dim=(-2, -1), keepdim=True) / 2
    kept = torch.relu(1 - threshold / intensity.clamp_min(TINY))
    return field * kept.sqrt()


def detector_masks(optics: DiffractiveOptics) -> Tensor:
    """``(10, grid, grid)`` float 0/1: the camera pixels summed into each class output."""
    masks = torch.zeros(CLASSES, optics.grid, optics.grid)
    side = optics.square_px
    for k, (row, col) in enumerate(optics.detector_corners()):
        masks[k, row : row + side, col : col + side] = 1.0
    return masks


@dataclass(eq=False)
class _Constants:
    """Everything a model of one geometry on one device reuses: transfer functions, lens, detectors, inputs."""

    optics: DiffractiveOptics
    device: torch.device
    inputs: dict[int, tuple[Tensor, Tensor, Tensor]] = dataclasses.field(default_factory=dict)

    def transfer(self, distance_mm: float) -> Tensor:
        o = self.optics
        circular = o.propagation == "circular"
        return transfer_function(o.grid, o.pixel_um, o.wavelength_nm, distance_mm, self.device, circular)

    @functools.cached_property
    def lens(self) -> Tensor:
        o = self.optics
        return lens_transmittance(o.grid, o.pixel_um, o.wavelength_nm, o.focal_mm, self.device)

    @functools.cached_property
    def detectors(self) -> Tensor:
        """``(N², 10)``: camera pixels → class powers as one matmul."""
        return detector_masks(self.optics).to(self.device).flatten(1).T.contiguous()

    def input_optics(self, features: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(Re K, Im K, G)`` for ``features = side²`` input pixels; see :meth:`DiffractiveModel.input_field`."""
        if features not in self.inputs:
            self.inputs[features] = self._input_optics(features)
        return self.inputs[features]

    def _input_optics(self, features: int) -> tuple[Tensor, Tensor, Tensor]:
        o = self.optics
        side = math.isqrt(features)
        if side * side != features:
            raise ValueError(f"the input must be a square image flattened, got {features} features")
        basis = torch.eye(features, device=self.device).view(features, 1, side, side)
        mode = {"mode": "bilinear", "align_corners": False} if o.input_upsampling == "bilinear" else {"mode": "nearest"}
        upscaled = F.interpolate(basis, size=(o.image_px, o.image_px), **mode)[:, 0]
        gram = upscaled.flatten(1) @ upscaled.flatten(1).T
        start = (o.grid - o.image_px) // 2
        plane = F.pad(upscaled, (start, o.grid - o.image_px - start) * 2).to(torch.complex64)
        at_mask = propagate(
            propagate(plane, self.transfer(o.input_to_lens_mm)) * self.lens, self.transfer(o.lens_to_mask_mm)
        )
        response = at_mask.flatten(1)
        return response.real.contiguous(), response.imag.contiguous(), gram  # contiguous: plain real matmuls


@functools.lru_cache(maxsize=16)
def _constants(optics: DiffractiveOptics, device: torch.device) -> _Constants:
    return _Constants(optics, device)


class DiffractiveModel(nn.Module):
    """The D2NN as a layer ``(x, phases) -> detector powers``: the simulator's truth and the twin alike.

    Models of the same geometry and device share their constant tensors, so :meth:`with_misalignment`
    (and constructing another model) costs nothing. Inputs on another device are moved here and the result
    is returned on the input's device; keep everything on one device to avoid the copies.
    """

    def __init__(
        self,
        optics: DiffractiveOptics,
        misalignment: Misalignment = Misalignment(),
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.optics = optics
        self.misalignment = misalignment
        self.device = torch.device(device) if device is not None else default_device()
        self._constants = _constants(optics, self.device)

    def with_misalignment(self, misalignment: Misalignment) -> DiffractiveModel:
        """The same optics with the masks somewhere else (caches shared)."""
        return DiffractiveModel(self.optics, misalignment, self.device)

    def input_field(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Field ``(B, N, N)`` arriving at the first mask and the input power ``(B,)`` for intensities ``x``.

        The input modulator sets amplitudes ``√x`` on a ``side × side`` image, upscaled (``input_upsampling``, in
        amplitude) and centred. Everything up to the first mask is linear in those amplitudes, so it is one
        precomputed matrix ``K`` (the propagated response of each input pixel) instead of two propagations
        per sample; the input power is ``aᵀGa`` with the upscaling's Gram matrix ``G``.
        """
        response_re, response_im, gram = self._constants.input_optics(x.shape[-1])
        amplitude = x.clamp_min(TINY).sqrt()
        field = torch.complex(amplitude @ response_re, amplitude @ response_im)
        power = ((amplitude @ gram) * amplitude).sum(-1)
        return field.view(-1, self.optics.grid, self.optics.grid), power

    def detector_intensity(self, x: Tensor, controls: Tensor) -> tuple[Tensor, Tensor]:
        """Camera-plane intensity ``(B, N, N)`` and input power ``(B,)`` (a camera image, before any noise)."""
        o, c = self.optics, self._constants
        if tuple(controls.shape) != o.control_shape:
            raise ValueError(f"controls must be {o.control_shape} mask phases, got {tuple(controls.shape)}")
        field, power = self.input_field(x.to(self.device, torch.float32))
        masks = mask_transmittance(controls.to(self.device, torch.float32), self.misalignment)
        for index in range(o.masks):
            if index:
                field = propagate(field, c.transfer(o.mask_spacing_mm))
            field = field * masks[index]
            if o.nonlinearity:
                field = threshold_nonlinearity(field)
        field = propagate(propagate(field, c.transfer(o.mask_to_lens_mm)) * c.lens, c.transfer(o.lens_to_detector_mm))
        return field.real.square() + field.imag.square(), power

    def layer(self, x: Tensor, controls: Tensor) -> Tensor:
        """``x`` (B, side²) intensities in [0, 1], ``controls`` (masks, N, N) rad -> (B, 10) powers / input power."""
        intensity, power = self.detector_intensity(x, controls)
        powers = intensity.flatten(1) @ self._constants.detectors
        return (powers / power.clamp_min(TINY).unsqueeze(1)).to(x.device)

    def forward(self, x: Tensor, controls: Tensor) -> Tensor:
        return self.layer(x, controls)

    def extra_repr(self) -> str:
        return f"{self.optics}, {self.misalignment}, device={self.device}"
