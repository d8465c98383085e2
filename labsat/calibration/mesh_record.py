"""A stored MZI mesh calibration: one whole-mesh fit, kept in the store beside the banks' records.

A mesh is not calibrated by a chain of procedures that each measure one part of the chip (a bank's
:class:`~labsat.calibration.record.CalibrationRecord`): :func:`~labsat.calibration.mzi.calibrate_mesh`
measures the whole mesh at random settings and fits every MZI at once. So its record is one fit, not a
list of procedure results: how it measured (:class:`MeshCalibrationOptions`), what it fitted (every
MZI's phase offsets, couplers and ``P_π``, and the readout around the mesh), how well the fit predicts
settings it never saw, and what it cost. What it shares with the other records of one fit (a D2NN's) is
:class:`~labsat.calibration.fitted.FitRecord`; its ``kind`` tells it apart from a bank's.

Fitted tensors are stored as JSON lists (a 10-mode mesh has 45 MZIs: a few hundred numbers), so a
record is self-contained and :meth:`MeshCalibrationRecord.calibration` rebuilds the twin after a restart.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from labsat.calibration.fitted import FitRecord
from labsat.calibration.mzi import MeshCalibration
from labsat.calibration.record import Cost, _Model
from labsat.physics.mzi import TENSOR_FIELDS, MZIChipParams
from labsat.readout import QueryStats

MESH_RECORD_VERSION = 1
MESH_PROCEDURE = "mesh"
"""The one procedure a mesh record holds (its ``procedures`` in listings): the whole-mesh fit."""


class MeshCalibrationOptions(_Model):
    """How the mesh is measured and fitted (the arguments of :func:`~labsat.calibration.mzi.calibrate_mesh`)."""

    settings: int = Field(200, ge=1, le=100_000, description="Random heater settings the fit is made to.")
    holdout: int = Field(40, ge=1, le=100_000, description="Further settings, never fitted, that judge the fit.")
    random_inputs: int = Field(
        10, ge=0, le=10_000, description="Random superpositions sent at each setting, besides the N unit inputs."
    )
    steps: int = Field(1500, ge=1, le=1_000_000, description="Adam steps of the fit (on the bench PC, no device time).")
    lr: float = Field(0.02, gt=0, description="Adam learning rate of the fit.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the random settings and inputs.")


class MeshParameters(_Model):
    """The fitted mesh, per MZI, and the readout around it, per mode (see :class:`MeshCalibration`)."""

    theta_offset: list[float]
    phi_offset: list[float]
    split_in: list[float]
    split_out: list[float]
    p_pi_mw: list[float]
    heater_resistance_ohm: list[float] = Field(description="The bench file's: optically it is part of P_π.")
    modulator_ratio: list[float] = Field(description="Per mode, nominal over true modulator V_π.")
    detector_gain: list[float] = Field(description="Per mode, measured over true output intensity.")


class MeshCalibrationRecord(FitRecord):
    """One calibration of one MZI mesh bench: the fit, its figures, its cost."""

    PROCEDURE: ClassVar[str] = MESH_PROCEDURE
    LABEL: ClassVar[str] = "mesh"

    kind: Literal["mzi_mesh"] = "mzi_mesh"
    version: int = MESH_RECORD_VERSION
    modes: int
    options: MeshCalibrationOptions = Field(default_factory=MeshCalibrationOptions)
    parameters: MeshParameters
    fit_rms: float = Field(description="RMS error on the fitted settings, in units of one input's full power.")
    holdout_rms: float = Field(description="RMS error of the fitted twin on the held-out settings.")
    design_holdout_rms: float = Field(description="RMS error of the design (uncalibrated) twin on the same.")

    def figures(self) -> dict[str, Any]:
        return {"fit_rms": self.fit_rms, "holdout_rms": self.holdout_rms, "design_holdout_rms": self.design_holdout_rms}

    def described(self) -> dict[str, Any]:
        return {"modes": self.modes}

    def fitted(self) -> Any:
        return self.parameters.model_dump()

    def twin_rms(self) -> dict[str, float | None]:
        return {"twin_weight_rms": None, "holdout_rms": self.holdout_rms}

    def table(self, summary: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str]:
        modes, options = self.modes, self.options
        rows = [
            ("mesh", f"{modes} modes, {modes * (modes - 1) // 2} MZIs"),
            ("settings fitted / held out", f"{options.settings} / {options.holdout}"),
            ("fit RMS", f"{self.fit_rms:.4g}"),
            ("holdout RMS, calibrated twin", f"{self.holdout_rms:.4g}"),
            ("holdout RMS, design twin", f"{self.design_holdout_rms:.4g}"),
        ]
        return "mesh calibration", rows, "RMS of twin − device in units of one input's full power"

    def calibration(self, device: torch.device | str | None = None) -> MeshCalibration:
        """The fit as :func:`~labsat.calibration.mzi.calibrate_mesh` returned it; ``.apply(system)`` gives the twin."""
        values = self.parameters

        def tensor(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(getattr(values, name), dtype=dtype, device=device)

        cost = QueryStats(self.cost.forwards, self.cost.programs, self.cost.samples, self.cost.bench_time_s)
        return MeshCalibration(
            params=MZIChipParams(**{name: tensor(name, torch.float32) for name in TENSOR_FIELDS}),
            modulator_ratio=tensor("modulator_ratio", torch.float64).cpu(),
            detector_gain=tensor("detector_gain", torch.float64).cpu(),
            fit_rms=self.fit_rms,
            holdout_rms=self.holdout_rms,
            design_holdout_rms=self.design_holdout_rms,
            cost=cost,
        )

    @classmethod
    def fitted_fields(cls, calibration: MeshCalibration) -> dict[str, Any]:
        params = calibration.params
        tensors = {name: getattr(params, name).detach().cpu().tolist() for name in TENSOR_FIELDS}
        return {
            "modes": params.modes,
            "parameters": MeshParameters(
                **tensors,
                modulator_ratio=calibration.modulator_ratio.detach().cpu().tolist(),
                detector_gain=calibration.detector_gain.detach().cpu().tolist(),
            ),
            "fit_rms": calibration.fit_rms,
            "holdout_rms": calibration.holdout_rms,
            "design_holdout_rms": calibration.design_holdout_rms,
            "cost": Cost().plus(calibration.cost),
        }
