"""The geometry of a diffractive network (D2NN) in a 4f system: distances, sampling, masks, detector regions.

Plain numbers, no tensors: the bench-file schema builds a :class:`DiffractiveOptics` from a bench's
``system`` entry (and validates it) without importing torch; :mod:`labsat.physics.diffractive` models
the light through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

REFERENCE_GRID = 128
"""The grid the reference detector layout is given on; other grids scale it."""

REFERENCE_DETECTOR_PX = 9
"""Side of a detector square on the reference grid."""

REFERENCE_LAYOUT: tuple[tuple[int, tuple[int, ...]], ...] = (
    (32, (32, 59, 86)),
    (59, (32, 50, 68, 86)),
    (86, (32, 59, 86)),
)
"""Detector squares on the reference 128 grid in a 3-4-3 layout: ``(top row, (left columns, …))`` per row."""

CLASSES = sum(len(columns) for _, columns in REFERENCE_LAYOUT)
"""Number of detector regions (one per class)."""

DISTANCES = (
    "focal_mm",
    "input_to_lens_mm",
    "lens_to_mask_mm",
    "mask_spacing_mm",
    "mask_to_lens_mm",
    "lens_to_detector_mm",
)
"""The :class:`DiffractiveOptics` fields that are lengths along the beam."""


@dataclass(frozen=True, kw_only=True)
class DiffractiveOptics:
    """The optical layout: wavelength, sampling, distances, masks and detector regions.

    ``input_size`` is the side (px) of the input image, centred on the grid (None: ``grid // 2``, the
    reference's 64 of 128), upscaled in amplitude by ``input_upsampling`` (``"nearest"``: the digit's pixels
    shown as blocks, as a DMD shows them); ``detector_px`` the side of a detector square (None: 9 px
    scaled to the grid). ``mask_spacing_mm`` separates consecutive masks. ``nonlinearity`` switches the
    intensity threshold after each mask (:func:`~labsat.physics.diffractive.threshold_nonlinearity`).

    ``propagation="circular"`` is the reference code's model, not a physical one: an unpadded FFT with the
    full transfer function, undersampled at these distances, so light leaving one side re-enters at the
    other and pixel-scale mask features keep steering light onto the detectors. It is kept to reproduce the
    paper's numbers and to show what they rest on (its BP collapse under mask rotation).
    """

    grid: int = 128
    pixel_um: float = 2.0
    wavelength_nm: float = 532.0
    focal_mm: float = 5.0
    input_to_lens_mm: float = 5.0
    lens_to_mask_mm: float = 4.0
    mask_spacing_mm: float = 2.0
    mask_to_lens_mm: float = 4.0
    lens_to_detector_mm: float = 5.0
    masks: int = 2
    nonlinearity: bool = True
    input_size: int | None = None
    input_upsampling: Literal["bilinear", "nearest"] = "bilinear"
    detector_px: int | None = None
    propagation: Literal["band-limited", "circular"] = "band-limited"

    def __post_init__(self) -> None:
        if self.grid < 16 or self.masks < 1:
            raise ValueError(f"need a grid of at least 16 px and one mask, got grid {self.grid}, masks {self.masks}")
        if not 0 < self.image_px <= self.grid:
            raise ValueError(f"input_size must be in 1..{self.grid}, got {self.input_size}")
        lengths = (self.pixel_um, self.wavelength_nm, self.focal_mm)
        if min(lengths) <= 0:
            raise ValueError(f"pixel, wavelength and focal length must be positive, got {lengths}")
        if self.input_upsampling not in ("bilinear", "nearest") or self.propagation not in ("band-limited", "circular"):
            raise ValueError(f"unknown input_upsampling {self.input_upsampling!r} or propagation {self.propagation!r}")

    def resized(self, grid: int) -> DiffractiveOptics:
        """The same system sampled on ``grid`` pixels of the same size: a smaller copy, for fast runs.

        Every length across the beam scales by ``grid/self.grid`` (aperture, input image, detectors), so
        every distance along it scales by the square: the Fresnel numbers ``a²/(λz)``, hence the light path
        and the number of resolvable spots per aperture, stay the same. Only the reference grid's geometry
        is the paper's; the reference distances on a smaller grid would send most light out of the aperture.
        """
        ratio = grid / self.grid
        lengths = {name: getattr(self, name) * ratio**2 for name in DISTANCES}
        sides = {
            name: getattr(self, name) and round(getattr(self, name) * ratio) for name in ("input_size", "detector_px")
        }
        return dataclasses.replace(self, grid=grid, **lengths, **sides)

    @property
    def image_px(self) -> int:
        """Side of the upscaled input image on the grid (px)."""
        return self.grid // 2 if self.input_size is None else self.input_size

    @property
    def square_px(self) -> int:
        """Side of a detector square (px)."""
        scaled = round(REFERENCE_DETECTOR_PX * self.grid / REFERENCE_GRID)
        return max(1, scaled) if self.detector_px is None else self.detector_px

    @property
    def control_shape(self) -> tuple[int, int, int]:
        """``(masks, grid, grid)``: one phase per SLM pixel."""
        return (self.masks, self.grid, self.grid)

    def detector_corners(self) -> list[tuple[int, int]]:
        """Top-left ``(row, column)`` of each detector square, class by class (reference layout scaled)."""
        scale = self.grid / REFERENCE_GRID
        return [(round(row * scale), round(col * scale)) for row, cols in REFERENCE_LAYOUT for col in cols]
