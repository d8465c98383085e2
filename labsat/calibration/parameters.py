"""Chip parameters from procedure results: the step between what was measured and what a twin needs.

Corrections that need a later procedure happen here rather than in the procedures:

- rings swept together heated each other, which narrowed their resonances and pulled them to lower
  power by ``1 + s_n``; the crosstalk kernel and the heater resistances give ``s_n``, and with them the
  single-ring values (:func:`ring_response`, differentiable, so the heaters procedure fits through it);
- each ring's off-resonance swing is ``g_row · P_channel``; a rank-1 fit over all rings separates the
  detector gains from the channel powers, and the System's per-row readout gain becomes
  ``g_row · mean(P)`` so a logical weight is the ring weight scaled by its channel's relative power.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from labsat.calibration.fitting import rank_one
from labsat.calibration.record import CalibrationRecord, ChipParameters, RingsResult
from labsat.calibration.rings import Ring, mutual_heating


@dataclass
class SweepTable:
    """The ring sweeps as ``(rows, cols)`` tensors; unfitted rings hold 0 (width: the median width)."""

    center_mw: Tensor
    fwhm_mw: Tensor
    depth: Tensor
    gain_volts: Tensor
    fitted: Tensor
    nominal_resistance_ohm: Tensor
    groups: list[list[Ring]]

    @classmethod
    def of(cls, rings: RingsResult) -> SweepTable:
        def table(field: str, missing: float) -> Tensor:
            return torch.tensor(
                [[missing if fit is None else getattr(fit, field) for fit in row] for row in rings.fits],
                dtype=torch.float64,
            )

        fitted = torch.tensor([[fit is not None for fit in row] for row in rings.fits])
        widths = table("fwhm_mw", float("nan"))
        typical = float(widths[fitted].median()) if bool(fitted.any()) else 1.0
        nominal = torch.tensor(rings.resistance_ohm, dtype=torch.float64)
        return cls(
            center_mw=table("resonance_mw", 0.0),
            fwhm_mw=torch.where(fitted, widths, typical),
            depth=table("depth", 0.0),  # an unfitted ring becomes a dark ring: it never drops light
            gain_volts=table("gain_volts", 0.0),
            fitted=fitted,
            nominal_resistance_ohm=nominal,
            groups=rings.groups,
        )


def ring_response(sweeps: SweepTable, kernel: Tensor, resistance_ohm: Tensor) -> tuple[Tensor, Tensor]:
    """Each ring alone: the heater power (mW at ``resistance_ohm``) that centres it, and its width.

    A sweep saw the peak at ``V² = P·R_nominal`` while its group added ``s_n`` of heat; alone, at
    resistance ``R``, the same resonance needs ``V²·(1 + s_n)/R``.
    """
    stretch = 1 + mutual_heating(kernel, sweeps.groups, resistance_ohm)
    scale = stretch * sweeps.nominal_resistance_ohm / resistance_ohm
    return sweeps.center_mw * scale, sweeps.fwhm_mw * scale


def _filled(values: list[float | None]) -> list[float]:
    """``values`` with the missing entries set to the median of the others (they are flagged already)."""
    present = torch.tensor([v for v in values if v is not None], dtype=torch.float64)
    fallback = float(present.median()) if len(present) else 0.0
    return [fallback if v is None else v for v in values]


def derive_parameters(record: CalibrationRecord) -> ChipParameters:
    """The twin's parameters from ``record``'s results.

    Uses the heaters procedure's resistances and kernel once it has fitted them, else the crosstalk
    kernel with the bench file's resistances (what the heaters procedure starts its fit from).
    """
    detectors, modulators, rings, crosstalk = record.detectors, record.modulators, record.rings, record.crosstalk
    assert detectors is not None and modulators is not None and rings is not None and crosstalk is not None
    assert crosstalk.kernel is not None
    sweeps = SweepTable.of(rings)
    heaters = record.heaters
    if heaters is not None and heaters.resistance_ohm is not None and heaters.kernel is not None:
        kernel = torch.tensor(heaters.kernel, dtype=torch.float64)
        resistance = torch.tensor(heaters.resistance_ohm, dtype=torch.float64)
    else:
        kernel = torch.tensor(crosstalk.kernel, dtype=torch.float64)
        resistance = sweeps.nominal_resistance_ohm
    resonance, fwhm = ring_response(sweeps, kernel, resistance)

    row_gain, channel_power = rank_one(sweeps.gain_volts, sweeps.fitted)
    known_rows = sweeps.fitted.any(dim=1)
    if bool(known_rows.any()):
        row_gain = torch.where(known_rows, row_gain, row_gain[known_rows].median())
    scale = channel_power.mean()  # the gauge: channel powers average 1 mW, the row gains take the rest
    return ChipParameters(
        assumed_efficiency_nm_per_mw=record.options.assumed_efficiency_nm_per_mw,
        heater_resistance_ohm=resistance.tolist(),
        resonance_mw=resonance.tolist(),
        fwhm_mw=fwhm.tolist(),
        depth=sweeps.depth.tolist(),
        fitted=sweeps.fitted.tolist(),
        row_gain_v_per_mw=(row_gain * scale).tolist(),
        channel_power_mw=(channel_power / scale).tolist(),
        dark_volts=list(detectors.dark_volts),
        modulator_v_pi=_filled(modulators.v_pi),
        crosstalk_kernel=kernel.tolist(),
    )
