"""The calibration record: what one calibration run measured and fitted, versioned and comparable.

A record holds one result per procedure (raw fit results, residuals, flags, the queries it cost) and the
chip parameters derived from all of them, which is what a twin is built from. Procedure results keep
their own ``done`` list, so a run that is interrupted saves a partial record and a resumed run skips the
finished ring groups. A run limited to some procedures (``--only``) inherits the others from the latest
finished record of the same bench, so a record is always "the newest result of every procedure".

Quantities are in the units a bench can observe. A heater sweep cannot tell a ring's resonance
wavelength from its heater efficiency (both only appear as ``Δλ/η``), so positions and widths are
stored in heater power (mW at the bench file's nominal heater resistance): the power that brings the
ring onto its channel, and the resonance width in that power. Nanometres follow from an assumed
efficiency, which is stored with them.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labsat.errors import LabsatError
from labsat.readout import QueryStats
from labsat.twin import ChipParameters

RECORD_VERSION = 1
MEASUREMENTS = ("detectors", "modulators", "rings", "crosstalk", "heaters")
"""The procedures that measure the chip, in the order a full calibration runs them (each needs the ones before)."""
PROCEDURE_ORDER = (*MEASUREMENTS, "validation")
"""Every procedure: the measurements, then the twin checked against the device."""

PER_RING_FITS = ("resonance_mw", "fwhm_mw", "depth")
"""Chip parameters that come from each ring's own fit: a flagged ring has none."""

Matrix = list[list[float]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Flag(_Model):
    """Something a procedure refused to fit, or a result the user must look at."""

    procedure: str
    target: str = Field(description="What is affected: 'ring (2, 5)', 'detector row 3', 'modulator m4'.")
    message: str

    def __str__(self) -> str:
        return f"{self.procedure}: {self.target}: {self.message}"


class Cost(_Model):
    """Device queries and estimated bench time a procedure used (summed over resumed runs)."""

    forwards: int = 0
    programs: int = 0
    samples: int = 0
    bench_time_s: float = 0.0

    def plus(self, stats: QueryStats) -> Cost:
        return Cost(
            forwards=self.forwards + stats.forwards,
            programs=self.programs + stats.programs,
            samples=self.samples + stats.samples,
            bench_time_s=self.bench_time_s + stats.bench_time_s,
        )


class CalibrationOptions(_Model):
    """How the procedures measure. Stored in the record, so a resumed run measures the same way."""

    repeats: int = Field(16, gt=1, le=10_000, description="Detector readings averaged for dark offsets and noise.")
    modulator_points: int = Field(41, ge=8, le=100_000, description="Drive points per modulator transfer curve.")
    sweep_points: int = Field(96, ge=16, le=100_000, description="Heater powers per ring sweep.")
    parallel_rows: bool = Field(
        True, description="Sweep every ring of a column at once (one per detector row), not one at a time."
    )
    parallel_columns: bool = Field(
        True, description="With parallel_rows, also sweep columns beyond each other's thermal reach together."
    )
    kernel_size: int = Field(5, ge=3, le=15, description="Side of the fitted thermal crosstalk kernel (odd).")
    aggressors: list[tuple[int, int]] | None = Field(
        None,
        description="Heaters stepped to measure crosstalk as row,col pairs (text: 3,4;5,2); default: one near the "
        "bank centre.",
    )
    heater_maps: int = Field(
        100, ge=10, le=100_000, description="Random heater maps the heater-resistance fit measures."
    )
    validation_maps: int = Field(100, ge=1, le=100_000, description="Random heater maps for the twin-vs-device check.")
    validation_inputs: int = Field(10, ge=1, le=10_000, description="Random inputs per validation heater map.")
    assumed_efficiency_nm_per_mw: float = Field(
        0.2, gt=0, description="Heater efficiency that converts fitted powers into nm (not observable by sweeps)."
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Seed of the random heater maps and inputs (validation: seed, heaters: +1)."
    )

    @field_validator("aggressors", mode="before")
    @classmethod
    def _rings_from_text(cls, value: Any) -> Any:
        """``"3,4;5,2"`` (a command line's form) as ``[(3, 4), (5, 2)]``."""
        if isinstance(value, str):
            return [tuple(part.split(",")) for part in value.split(";") if part.strip()]
        return value

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (the kernel is centred on a ring), got {size}")
        return size


class ProcedureResult(_Model):
    """What every procedure result carries besides its own fits."""

    record_id: str = Field(description="The record whose run produced this result (differs when inherited).")
    complete: bool = False
    done: list[int] = Field(default_factory=list, description="Finished steps; a resumed run skips them.")
    cost: Cost = Field(default_factory=Cost)
    flags: list[Flag] = Field(default_factory=list)
    finished: datetime | None = None

    def quality(self) -> str:
        """One line on how well the fits match the data, for summary tables."""
        raise NotImplementedError


class DetectorsResult(ProcedureResult):
    """Dark offsets and noise per detector row, and the rail of each row that clips at full input.

    A detector in a weight bank only sees light that went through rings, so its gain is fitted by the
    ring sweeps (the off-resonance level of each ring), not here.
    """

    procedure: Literal["detectors"] = "detectors"
    dark_volts: list[float] = Field(default_factory=list)
    noise_volts: list[float] = Field(default_factory=list)
    full_input_volts: list[float] = Field(default_factory=list)
    rail_volts: list[float | None] = Field(
        default_factory=list, description="Where a row's readings pinned at full input (its converter limit)."
    )

    @property
    def saturated_rows(self) -> list[int]:
        return [r for r, rail in enumerate(self.rail_volts) if rail is not None]

    def quality(self) -> str:
        if not self.noise_volts:
            return "-"
        return f"noise {1e3 * max(self.noise_volts):.3g} mV max; {len(self.saturated_rows)} rows clip at full input"


class ModulatorsResult(ProcedureResult):
    """Half-wave voltage of each input modulator from its sin² transfer curve."""

    procedure: Literal["modulators"] = "modulators"
    drive_volts: tuple[float, float] = (0.0, 0.0)
    v_pi: list[float | None] = Field(default_factory=list)
    rms_volts: list[float | None] = Field(default_factory=list)

    def quality(self) -> str:
        return _rms_line(self.rms_volts, "mV", 1e3)


class RingFit(_Model):
    """One ring's Lorentzian, as the sweep saw it (heating from rings swept with it not yet removed)."""

    resonance_mw: float = Field(description="Heater power (nominal resistance) at the peak.")
    fwhm_mw: float = Field(description="Full width at half maximum, in heater power.")
    depth: float = Field(description="Drop fraction on resonance, D in T_d = D·L.")
    gain_volts: float = Field(description="Detector swing for this channel at full input: g_row·P_channel.")
    rms_volts: float = Field(description="Fit residual.")


class RingsResult(ProcedureResult):
    """Per-ring heater sweeps fitted with the Lorentzian resonance model."""

    procedure: Literal["rings"] = "rings"
    groups: list[list[tuple[int, int]]] = Field(default_factory=list, description="Rings swept together, per step.")
    power_mw: tuple[float, float] = (0.0, 0.0)
    points: int = 0
    resistance_ohm: Matrix = Field(default_factory=list, description="Heater resistance that defines 'mW'.")
    fits: list[list[RingFit | None]] = Field(default_factory=list, description="(rows, cols); None: not fitted.")

    def quality(self) -> str:
        return _rms_line([fit.rms_volts if fit else None for row in self.fits for fit in row], "mV", 1e3)


class CrosstalkObservation(_Model):
    """Resonance centres of one column's rings, swept again with an aggressor heater held hot."""

    aggressor: tuple[int, int]
    aggressor_mw: float
    column: int
    swept_rows: list[int]
    centers_mw: list[float | None] = Field(description="Per row; None where the peak was not inside the sweep.")


class CrosstalkResult(ProcedureResult):
    """Thermal crosstalk kernel from the resonance shifts of an aggressor heater's neighbours."""

    procedure: Literal["crosstalk"] = "crosstalk"
    aggressors: list[tuple[int, int]] = Field(default_factory=list)
    kernel_size: int = 5
    observations: list[CrosstalkObservation] = Field(default_factory=list)
    kernel: Matrix | None = None
    asymmetry: float | None = Field(
        None, description="RMS of (K − K flipped)/2: heat flows both ways alike, so this is the fit's inconsistency."
    )

    def quality(self) -> str:
        return "-" if self.asymmetry is None else f"kernel asymmetry rms {self.asymmetry:.2g}"


class HeatersResult(ProcedureResult):
    """Heater resistance spread and the crosstalk kernel, fitted to weight maps at random heater settings.

    Sweeps cannot see a heater's resistance: a ring responds to its own ``V²/R`` only through ``Δλ/η``.
    Its neighbours see it, though: heater ``m`` warms ring ``n`` by ``K·V_m²/R_m`` against ``n``'s own
    ``V_n²/R_n``. A few percent of resistance spread thus mis-scales every crosstalk term; fitting the
    ratios (and polishing the kernel with them) to maps where every heater is on removes that error.
    """

    procedure: Literal["heaters"] = "heaters"
    maps: int = 0
    resistance_ohm: Matrix | None = Field(
        None, description="Fitted heater resistances (their geometric mean: the bench file's)."
    )
    kernel: Matrix | None = None
    rms_before: float | None = Field(None, description="Weight RMS residual with the sweep-based parameters.")
    rms_after: float | None = Field(None, description="Weight RMS residual after the fit.")

    def quality(self) -> str:
        if self.rms_after is None:
            return "-"
        return f"weight residual {self.rms_before:.3g} -> {self.rms_after:.3g}"


class ValidationResult(ProcedureResult):
    """The twin against fresh device measurements at random inputs and heater maps."""

    procedure: Literal["validation"] = "validation"
    samples: int = 0
    weight_rms: float | None = Field(None, description="RMS of (twin − device) / ‖x‖₂: error per weight.")
    output_rms: float | None = Field(None, description="RMS of twin − device in logical output units.")

    def quality(self) -> str:
        return "-" if self.weight_rms is None else f"weight rms {self.weight_rms:.3g}"


ProcedureResults = DetectorsResult | ModulatorsResult | RingsResult | CrosstalkResult | HeatersResult | ValidationResult


class CalibrationRecord(_Model):
    """One calibration of one bench."""

    kind: Literal["mrr_bank"] = Field(
        "mrr_bank", description="The system calibrated; a record stored before mesh records existed has none."
    )
    version: int = RECORD_VERSION
    id: str
    bench: str
    bench_identity: str
    created: datetime
    finished: datetime | None = None
    delta_t_k: float | None = Field(
        None, description="Chip temperature offset from its reference during the run (K), where the bench reports it."
    )
    rows: int
    cols: int
    options: CalibrationOptions = Field(default_factory=CalibrationOptions)
    requested: list[str] = Field(
        default_factory=list, description="Procedures this run was asked for (--only); validation runs regardless."
    )
    inherited_from: str | None = Field(None, description="Record the procedures not run here came from.")
    detectors: DetectorsResult | None = None
    modulators: ModulatorsResult | None = None
    rings: RingsResult | None = None
    crosstalk: CrosstalkResult | None = None
    heaters: HeatersResult | None = None
    validation: ValidationResult | None = None
    parameters: ChipParameters | None = None
    complete: bool = False

    @property
    def procedures(self) -> list[str]:
        """Names of the procedures this record holds a result for, in run order."""
        return [name for name in PROCEDURE_ORDER if self.result(name) is not None]

    def result(self, name: str) -> ProcedureResults | None:
        if name not in PROCEDURE_ORDER:
            raise LabsatError(f"unknown calibration procedure {name!r} (known: {', '.join(PROCEDURE_ORDER)})")
        return getattr(self, name)

    @property
    def flags(self) -> list[Flag]:
        return [flag for name in self.procedures for flag in self.result(name).flags]  # type: ignore[union-attr]

    def comparable(self) -> dict[str, Any]:
        """The derived chip parameters, a flagged ring's own fit left out (``None``), for :func:`compare`."""
        if self.parameters is None:
            raise LabsatError(f"calibration {self.id!r} has no chip parameters yet (it did not finish)")
        fitted = self.parameters.fitted
        values = self.parameters.comparable()
        for name in PER_RING_FITS:
            values[name] = [
                [value if ok else None for value, ok in zip(row, fitted_row, strict=True)]
                for row, fitted_row in zip(values[name], fitted, strict=True)
            ]
        return values

    @property
    def builds_twin(self) -> bool:
        """Finished, with the chip parameters a twin is made of."""
        return self.complete and self.parameters is not None

    def twin_rms(self) -> dict[str, float | None]:
        """How well its twin matched the device, as listings show it: the validation's RMS per weight."""
        return {"twin_weight_rms": self.validation.weight_rms if self.validation else None, "holdout_rms": None}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> CalibrationRecord:
        """Load stored JSON; a record from a newer labsat is refused rather than misread."""
        version = data.get("version")
        if version != RECORD_VERSION:
            raise LabsatError(
                f"calibration {data.get('id')!r} has record version {version}; this labsat reads version "
                f"{RECORD_VERSION}"
            )
        return cls.model_validate(data)


def _rms_line(values: list[float | None], unit: str, scale: float) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    rms = math.sqrt(sum(v * v for v in present) / len(present))
    return f"residual rms {scale * rms:.3g} {unit} ({len(present)} fits)"
