"""A stored D2NN calibration: the fitted gray→phase LUT of every mask SLM, kept beside the other records.

:func:`~labsat.calibration.slm_lut.calibrate_slm_luts` measures each mask SLM by split-screen interference
through the bench's own detectors and fits its LUT; the optics themselves are taken as designed (the
nominal twin), so the LUTs are the whole calibration: once the System shows phases through them
(:meth:`D2NNCalibrationRecord.apply`), the phases on the masks are the ones the nominal twin is given. The
record holds how it measured (:class:`D2NNCalibrationOptions`), every mask SLM's fitted table (256 phases
as a JSON list), how far it lies from the bench file's nominal table and how well it fits the readings,
and what it cost; the rest it shares with a mesh's record (:class:`~labsat.calibration.fitted.FitRecord`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from labsat.calibration.fitted import FitRecord
from labsat.calibration.record import Cost, _Model
from labsat.calibration.slm_lut import LUTCalibration
from labsat.errors import LabsatError
from labsat.physics.slm import PhaseLUT
from labsat.systems.d2nn import D2NNSystem

D2NN_RECORD_VERSION = 1
D2NN_PROCEDURE = "slm_luts"
"""The one procedure a D2NN record holds (its ``procedures`` in listings): the LUT fit of every mask SLM."""


class D2NNCalibrationOptions(_Model):
    """How the mask SLMs are measured and fitted (:func:`~labsat.calibration.slm_lut.calibrate_slm_luts`'s arguments).

    ``step`` and ``repeats`` set the device time; the other two are the fit's, on the bench PC.
    """

    step: int = Field(
        1, ge=1, le=127, description="Measure every step-th gray level (0 and 255 always); the rest interpolated."
    )
    repeats: int = Field(4, ge=1, le=10_000, description="Detector readings averaged per gray level.")
    template_points: int = Field(
        256,
        ge=16,
        le=100_000,
        description="Phase differences over one turn the twin's template is computed at (no device time).",
    )
    iterations: int = Field(
        6, ge=1, le=10_000, description="Rounds of the fit of phases and detector gains (no device time)."
    )


class MaskLUT(_Model):
    """One mask SLM's fitted LUT and its figures."""

    slm: str = Field(description="The mask SLM's device name in the bench file.")
    phase: list[float] = Field(
        description="Fitted phase (rad) at each gray level (gray 0 at 0: offsets are unobservable)."
    )
    rms_vs_nominal: float = Field(description="RMS (rad) of fitted − nominal LUT, common offset removed.")
    residual: float = Field(description="RMS of reading − fitted model over the readings' RMS spread (0: perfect).")

    @property
    def span_rad(self) -> float:
        """Phase at the last gray level: how far the SLM turns (the nominal table's 2π·255/256)."""
        return self.phase[-1] - self.phase[0]


class D2NNCalibrationRecord(FitRecord):
    """One calibration of one D2NN bench: every mask SLM's fitted LUT, its figures, its cost."""

    PROCEDURE: ClassVar[str] = D2NN_PROCEDURE
    LABEL: ClassVar[str] = "D2NN LUT"

    kind: Literal["d2nn"] = "d2nn"
    version: int = D2NN_RECORD_VERSION
    options: D2NNCalibrationOptions = Field(default_factory=D2NNCalibrationOptions)
    masks: list[MaskLUT] = Field(min_length=1, description="Per mask SLM, in the bench file's system.masks order.")
    nominal_phase_range_rad: float = Field(description="The bench file's nominal LUT the figures compare with.")

    def figures(self) -> dict[str, Any]:
        return {
            "lut_rms_vs_nominal": [mask.rms_vs_nominal for mask in self.masks],
            "lut_span_rad": [mask.span_rad for mask in self.masks],
            "fit_residual": [mask.residual for mask in self.masks],
        }

    def described(self) -> dict[str, Any]:
        return {"masks": [mask.slm for mask in self.masks]}

    def fitted(self) -> Any:
        return {"luts": {mask.slm: mask.phase for mask in self.masks}}

    def table(self, summary: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str]:
        levels = len({*range(0, 256, self.options.step), 255})
        rows = [("gray levels measured × readings", f"{levels} × {self.options.repeats} per mask and split")]
        for mask in self.masks:
            rows += [
                (f"{mask.slm}: LUT − nominal, RMS", f"{mask.rms_vs_nominal:.4f} rad"),
                (f"{mask.slm}: phase at gray 255", f"{mask.span_rad:.3f} rad"),
                (f"{mask.slm}: fit residual", f"{mask.residual:.4f}"),
            ]
        caption = "LUT − nominal: common offset removed; residual: RMS misfit over the readings' spread"
        return "D2NN SLM LUT calibration", rows, caption

    def luts(self) -> list[PhaseLUT]:
        """The fitted LUTs, one per mask SLM."""
        return [PhaseLUT(torch.tensor(mask.phase, dtype=torch.float64)) for mask in self.masks]

    def apply(self, system: D2NNSystem) -> None:
        """Show phases on ``system`` through the fitted LUTs (absolute: applying twice is applying once)."""
        if [slm.name for slm in system.masks] != [mask.slm for mask in self.masks]:
            raise LabsatError(
                f"calibration {self.id} fitted the SLMs {[mask.slm for mask in self.masks]}; this system's masks "
                f"are {[slm.name for slm in system.masks]}"
            )
        system.use_luts(self.luts())

    @classmethod
    def fitted_fields(cls, calibration: tuple[LUTCalibration, D2NNSystem]) -> dict[str, Any]:
        """``calibration`` is the fit and the system whose mask SLMs it fitted."""
        fit, system = calibration
        nominal = system.nominal_luts()
        masks = [
            MaskLUT(
                slm=slm.name,
                phase=lut.phase.tolist(),
                rms_vs_nominal=lut.rms_difference(design),
                residual=residual,
            )
            for slm, lut, design, residual in zip(system.masks, fit.luts, nominal, fit.residual, strict=True)
        ]
        return {
            "masks": masks,
            "nominal_phase_range_rad": system.spec.lut_phase_range_rad,
            "cost": Cost().plus(fit.cost),
        }
