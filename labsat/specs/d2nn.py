"""The ``system:`` section of a diffractive network in a 4f system (the ``d2nn`` kind)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from labsat.benchfile import RoleNeed, SystemSpec
from labsat.physics.optics import CLASSES, DiffractiveOptics


class D2NNSystemSpec(SystemSpec):
    """A diffractive network in a 4f system: an input SLM, phase-mask SLMs, ten detector regions on a camera.

    The input device is an amplitude SLM (or DMD) of ``input_side × input_side`` pixels, one per feature,
    whose intensity transmission is proportional to its gray level; the optics magnify it onto
    ``input_image_px`` grid pixels (bilinear, as :class:`~labsat.physics.diffractive.DiffractiveOptics`
    models it). Each mask SLM shows ``grid × grid`` pixels through its gray→phase LUT; the uncalibrated
    twin assumes the linear ``lut_phase_range_rad·g/256``. Lengths in µm, nm and mm as named.
    """

    type: Literal["d2nn"]
    masks: list[str] = Field(min_length=1, description="SLMs showing the phase masks, in the order light meets them.")
    input: str = Field(description="Amplitude SLM showing the input image, one pixel per feature.")
    detectors: str = Field(description=f"Detector with one channel per class region ({CLASSES}).")
    grid: int = Field(128, ge=16, description="Simulation grid and mask SLM side, in pixels.")
    pixel_um: float = Field(2.0, gt=0, description="Pixel pitch at the masks.")
    wavelength_nm: float = Field(532.0, gt=0)
    focal_mm: float = Field(5.0, gt=0, description="Focal length of both lenses.")
    input_to_lens_mm: float = Field(5.0, ge=0)
    lens_to_mask_mm: float = Field(4.0, ge=0)
    mask_spacing_mm: float = Field(2.0, ge=0, description="Distance between consecutive masks.")
    mask_to_lens_mm: float = Field(4.0, ge=0)
    lens_to_detector_mm: float = Field(5.0, ge=0)
    nonlinearity: bool = Field(True, description="Intensity threshold after each mask (the reference's).")
    input_side: int = Field(8, gt=0, description="Side of the input SLM: input_side² features.")
    input_image_px: int | None = Field(None, gt=0, description="Side of the input image on the grid (None: grid/2).")
    detector_px: int | None = Field(None, gt=0, description="Side of a detector square (None: 9 px scaled to grid).")
    lut_phase_range_rad: float = Field(
        2 * math.pi, gt=0, description="Nominal LUT: phase of gray g is range·g/256 (before calibration)."
    )
    readout_volts_per_unit: float = Field(
        0.5, gt=0, description="Nominal detector volts for a region receiving the full-on input's whole power."
    )
    readout_dark_volts: float = Field(0.0, description="Nominal detector reading with no light.")

    @model_validator(mode="after")
    def _geometry(self) -> D2NNSystemSpec:
        if self.input_image_px is not None and self.input_image_px > self.grid:
            raise ValueError(f"input_image_px {self.input_image_px} is larger than the grid ({self.grid} px)")
        self.optics()  # and whatever else the optics model refuses
        return self

    @property
    def label(self) -> str:
        return f"{len(self.masks)}-mask D2NN"

    def optics(self) -> DiffractiveOptics:
        """The bench's geometry as the physics model takes it."""
        return DiffractiveOptics(
            grid=self.grid,
            pixel_um=self.pixel_um,
            wavelength_nm=self.wavelength_nm,
            focal_mm=self.focal_mm,
            input_to_lens_mm=self.input_to_lens_mm,
            lens_to_mask_mm=self.lens_to_mask_mm,
            mask_spacing_mm=self.mask_spacing_mm,
            mask_to_lens_mm=self.mask_to_lens_mm,
            lens_to_detector_mm=self.lens_to_detector_mm,
            masks=len(self.masks),
            nonlinearity=self.nonlinearity,
            input_size=self.input_image_px,
            detector_px=self.detector_px,
        )

    def device_roles(self) -> list[RoleNeed]:
        masks = [
            RoleNeed("masks", name, "slm", shape=(self.grid, self.grid), position=i)
            for i, name in enumerate(self.masks)
        ]
        return [
            *masks,
            RoleNeed("input", self.input, "slm", shape=(self.input_side, self.input_side)),
            RoleNeed("detectors", self.detectors, "detector", CLASSES),
        ]
