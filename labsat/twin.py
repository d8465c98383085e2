"""The digital twin: the bank's physics (:class:`~labsat.physics.mrr.MRRBankModel`) with fitted parameters.

A twin is built from a calibration record and answers in the same logical units as
:meth:`MRRBankSystem.forward <labsat.systems.mrr.MRRBankSystem.forward>` once that record's readout is
applied to the System (:func:`apply_calibration`): ``layer(x, controls)`` ≈ ``system.forward(x, controls)``.
It is differentiable in ``x``, the controls and (with ``trainable``) every chip parameter, so it serves
as the backward model of PAT, the forward model of in-silico training, and the start of a refit (DAT).

The record stores resonances in heater power (what sweeps observe); the twin turns them into
wavelengths with the record's assumed heater efficiency. Any efficiency gives the same weights at the
calibration temperature; only the temperature-drift term (nm/K) depends on it being right. The
``delta_t_k`` arguments are temperature changes since the calibration.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from labsat.errors import LabsatError
from labsat.physics.mrr import MRRBankModel, MRRChipParams, TemperatureShift, logical_weights
from labsat.readout import Readout
from labsat.systems.mrr import MRRBankSystem

REFERENCE_WAVELENGTH_NM = 1550.0
"""Channel wavelength the twin places every channel at: sweeps see detunings, never absolute wavelengths."""

Matrix = list[list[float]]


class ChipParameters(BaseModel):
    """Everything a twin needs, derived from a calibration's procedure results (single-ring, crosstalk removed).

    A calibration record stores them (:class:`~labsat.calibration.record.CalibrationRecord`); the twin is
    built from them, so their schema lives with the twin and the record refers to it.
    """

    model_config = ConfigDict(extra="forbid")

    assumed_efficiency_nm_per_mw: float
    heater_resistance_ohm: Matrix = Field(
        description="Fitted heater resistances (their geometric mean: the bench file's)."
    )
    resonance_mw: Matrix = Field(description="Heater power, alone, that centres each ring on its channel.")
    fwhm_mw: Matrix
    depth: Matrix
    fitted: list[list[bool]] = Field(description="False: no fit (flagged); the twin treats the ring as dark.")
    row_gain_v_per_mw: list[float] = Field(description="g_r of the rank-1 gain g_r·P_c (P in relative mW).")
    channel_power_mw: list[float] = Field(description="P_c of the rank-1 gain, normalised to a mean of 1.")
    dark_volts: list[float]
    modulator_v_pi: list[float]
    crosstalk_kernel: Matrix

    @property
    def volts_per_unit(self) -> list[float]:
        """The System's readout gain per row, ``g_r · mean(P_c)``: logical weight = ring weight × P_c / mean(P)."""
        mean_power = sum(self.channel_power_mw) / len(self.channel_power_mw)
        return [gain * mean_power for gain in self.row_gain_v_per_mw]

    def comparable(self) -> dict[str, Any]:
        """Parameter name -> nested list, the comparable quantities."""
        return {
            name: value for name, value in self.model_dump().items() if isinstance(value, list) and name != "fitted"
        }


class FittedRecord(Protocol):
    """What a twin reads of a calibration record: its id (named in errors) and its fitted chip parameters.

    A bank's :class:`~labsat.calibration.record.CalibrationRecord` is one; the twin does not depend on the
    calibration procedures that write it.
    """

    @property
    def id(self) -> str: ...

    @property
    def parameters(self) -> ChipParameters | None: ...


def wavelengths(resonance_mw: Tensor, fwhm_mw: Tensor, efficiency_nm_per_mw: float) -> tuple[Tensor, Tensor]:
    """Rest resonance and FWHM in nm for resonances measured in heater power, at an assumed efficiency."""
    return REFERENCE_WAVELENGTH_NM - efficiency_nm_per_mw * resonance_mw, efficiency_nm_per_mw * fwhm_mw


def chip_params(
    parameters: ChipParameters, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> MRRChipParams:
    """:class:`MRRChipParams` equivalent to a record's parameters (resonances in nm at the assumed efficiency)."""

    def tensor(values: object) -> Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    efficiency = parameters.assumed_efficiency_nm_per_mw
    rest_nm, fwhm_nm = wavelengths(tensor(parameters.resonance_mw), tensor(parameters.fwhm_mw), efficiency)
    return MRRChipParams(
        channel_wavelength_nm=torch.full(rest_nm.shape[-1:], REFERENCE_WAVELENGTH_NM, dtype=dtype, device=device),
        rest_resonance_nm=rest_nm,
        fwhm_nm=fwhm_nm,
        drop_depth=tensor(parameters.depth),
        efficiency_nm_per_mw=torch.full_like(rest_nm, efficiency),
        heater_resistance_ohm=tensor(parameters.heater_resistance_ohm),
        crosstalk_kernel=tensor(parameters.crosstalk_kernel),
        modulator_v_pi=tensor(parameters.modulator_v_pi),
        input_power_mw=tensor(parameters.channel_power_mw),
        readout_volts_per_mw=tensor(parameters.row_gain_v_per_mw),
        readout_offset_v=tensor(parameters.dark_volts),
    )


def readout(parameters: ChipParameters, device: torch.device | str | None = None) -> Readout:
    """The System readout a record's fits call for (per-row gain and dark offset, per-channel Vπ)."""
    return Readout(
        volts_per_unit=torch.tensor(parameters.volts_per_unit, dtype=torch.float32, device=device),
        dark_volts=torch.tensor(parameters.dark_volts, dtype=torch.float32, device=device),
        modulator_v_pi=torch.tensor(parameters.modulator_v_pi, dtype=torch.float32, device=device),
    )


def _parameters(record: FittedRecord) -> ChipParameters:
    if record.parameters is None:
        raise LabsatError(f"calibration {record.id} has no chip parameters (it did not run every procedure)")
    return record.parameters


def apply_calibration(system: MRRBankSystem, record: FittedRecord) -> None:
    """Make ``system`` read out in the record's units: fitted dark offsets, gains and modulator Vπ."""
    system.readout = readout(_parameters(record), system.torch_device)


class Twin(nn.Module):
    """A differentiable model of one calibrated MRR bank.

    ``model`` holds the physics in physical units (detector volts); the readout buffers map them to the
    System's logical units. ``trainable`` names chip parameters to make :class:`~torch.nn.Parameter` s.
    """

    volts_per_unit: Tensor

    def __init__(self, params: MRRChipParams, readout: Readout, trainable: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.model = MRRBankModel(params, trainable)
        # Only the gain maps volts to units: the System subtracts the dark offset, which the model never adds.
        self.register_buffer("volts_per_unit", readout.volts_per_unit)

    @classmethod
    def from_record(
        cls, record: FittedRecord, device: torch.device | str | None = None, trainable: tuple[str, ...] = ()
    ) -> Twin:
        parameters = _parameters(record)
        return cls(chip_params(parameters, device), readout(parameters, device), trainable)

    def without_fabrication_offsets(self) -> Twin:
        """This twin with every ring resting at the bank's mean resonance: what a lab that never measured its
        chip's fabrication offsets would train with (the rest of the fit, gains and crosstalk, kept)."""
        params = self.model.params
        rest = params.rest_resonance_nm.detach()
        design = dataclasses.replace(params, rest_resonance_nm=torch.full_like(rest, float(rest.mean())))
        twin = copy.deepcopy(self)
        twin.model = MRRBankModel(design)
        return twin

    @property
    def rows(self) -> int:
        return self.model.params.rows

    @property
    def cols(self) -> int:
        return self.model.params.cols

    def unit_scale(self) -> Tensor:
        """``(*S, rows, cols)``: logical units per unit of ring weight, ``g_r · P_c / volts_per_unit_r``."""
        params = self.model.params
        gain = params.readout_volts_per_mw / self.volts_per_unit
        return gain.unsqueeze(-1) * params.input_power_mw.unsqueeze(-2)

    def weights(self, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Logical weights ``(*S, out, in)`` for heater voltages ``controls`` ``(out, in)``, tiled over the bank."""
        out_features, in_features = controls.shape[-2:]
        tiles = (-(-out_features // self.rows), -(-in_features // self.cols))
        unit = self.unit_scale()
        scale = unit.repeat(*([1] * (unit.dim() - 2)), *tiles)[..., :out_features, :in_features]
        return logical_weights(self.model.params, controls, delta_t_k) * scale

    def layer(self, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """``(B, in) -> (B, out)``: what ``system.forward(x, controls)`` measures, in the same units.

        A twin of a chip population (batched parameters ``(K, ...)``) gives ``(K, B, out)``; ``x`` may then
        carry the same leading ``K`` (a deeper layer's input), so a network runs on every chip in one pass.
        """
        weights = self.weights(controls, delta_t_k)
        return F.linear(x, weights) if weights.dim() == 2 else x @ weights.mT

    def forward(self, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        return self.layer(x, controls, delta_t_k)

    def detector_volts(self, x: Tensor, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Raw detector volts ``(B, rows)`` for input fractions ``x`` ``(B, cols)`` (``measure_volts``'s units)."""
        return self.model(x, heater_volts, delta_t_k)
