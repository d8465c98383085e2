"""The sweep declaration: axes over training settings, what to measure, validated with file-and-key errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labsat.bench import DEFAULT_BENCH, builtin_bench_path
from labsat.benchfile import BenchFile, load_bench_file
from labsat.errors import LabsatError
from labsat.evaluation.mesh_chips import MESH_TRANSFER
from labsat.evaluation.sweeps import NOISE, TRANSFER
from labsat.training.config import TrainConfig

Measure = Literal[
    "accuracy",
    "drift",
    "validation_drift",
    "chip_accuracy",
    "noise",
    "control_noise",
    "transfer",
    "lambda_max",
    "lambda_min",
    "trace",
    "fresh_devices",
    "mesh_transfer",
    "coupler_errors",
    "forwards",
    "bench_time",
    "wall",
]

DEVICE_MEASURES = frozenset({"accuracy", "forwards", "bench_time", "wall"})
"""What any bench, real hardware included, can measure: nothing here warms, redraws or models the chip."""
CHIP_MEASURES = frozenset({"drift", "chip_accuracy", "noise", "control_noise", "transfer"})
"""Measures taken on a bank's chip model (warmed, made noisy, redrawn: :mod:`labsat.evaluation.chips`)."""
MESH_MEASURES = frozenset({"fresh_devices", "mesh_transfer", "coupler_errors"})
"""Measures taken on other meshes of an MZI bench's design (:mod:`labsat.evaluation.mesh_chips`)."""
CURVATURE_MEASURES = frozenset({"lambda_max", "lambda_min", "trace"})
"""Measures of the test loss's curvature over the controls: on a bank's chip model, on a mesh's design model."""
SYSTEM_MEASURES = {"mrr_bank": CHIP_MEASURES | CURVATURE_MEASURES, "mzi_mesh": MESH_MEASURES | CURVATURE_MEASURES}
"""The measures beyond the device's own (accuracy, costs) each system kind takes."""
SYSTEM_LABELS = {"mrr_bank": "an MRR bank's chip model", "mzi_mesh": "an MZI mesh"}

ACCURACY = "fraction of the test split"
CURVATURE = "control⁻²"
"""Stands for the curvature unit of the bench's controls (:data:`CURVATURE_UNITS`)."""
CURVATURE_UNITS = {"mrr_bank": "V⁻²", "mzi_mesh": "rad⁻²"}
"""The test cross-entropy's curvature is over heater volts on a bank, over phase shifts on a mesh."""
SPLIT = "1"
"""σ_ph in rad and σ_bs as a fraction of the 50:50 split, drawn equal on a fresh mesh (the SAT paper's diagonal)."""
TWINS = {
    "calibrated": None,
    "design": ("mzi_mesh", "a mesh's design model"),
    "uninformed": ("mrr_bank", "a bank's calibrated twin without its fabrication offsets"),
}
"""What a cell trains with (the ``twin`` key of ``base`` or ``axes``), and the system kind it needs: the
bench's calibrated twin (the default, any bench); a mesh's design model (no calibration: the SAT paper's
offline twin); a bank's calibrated twin with every ring at the mean rest resonance (a lab that never
measured its chip's fabrication offsets, :meth:`~labsat.twin.Twin.without_fabrication_offsets`)."""


@dataclass(frozen=True)
class Variable:
    """One stored variable: its unit, the spec list it runs along in a cell (None: a scalar), what it is."""

    unit: str
    axis: str | None
    description: str


VARIABLES: dict[str, Variable] = {
    "accuracy": Variable(ACCURACY, None, "accuracy on the device after training"),
    "drift": Variable(ACCURACY, "drift_k", "accuracy on the device with the chip ΔT warmer"),
    "validation_drift": Variable(
        ACCURACY, "drift_k", "accuracy on the held-out validation split on the device with the chip ΔT warmer"
    ),
    "chip_accuracy": Variable(ACCURACY, None, "accuracy on the chip model (ground truth, calibrated readout)"),
    "noise": Variable(ACCURACY, "read_noise", "chip-model accuracy under read noise, mean over draws"),
    "noise_std": Variable(ACCURACY, "read_noise", "sample std of `noise` over its draws"),
    "control_noise": Variable(ACCURACY, "control_noise_v", "chip-model accuracy under heater-control noise, mean"),
    "control_noise_std": Variable(ACCURACY, "control_noise_v", "sample std of `control_noise` over its draws"),
    "transfer": Variable(ACCURACY, "transfer_sigma_nm", "the same controls on fresh chips, mean over chips"),
    "transfer_std": Variable(ACCURACY, "transfer_sigma_nm", "sample std of `transfer` over its chips"),
    "lambda_max": Variable(CURVATURE, None, "largest Hessian eigenvalue of the loss over the controls (Lanczos)"),
    "lambda_max_error": Variable(CURVATURE, None, "Ritz residual bound of `lambda_max`"),
    "lambda_min": Variable(CURVATURE, None, "smallest Hessian eigenvalue (negative: a saddle)"),
    "lambda_min_error": Variable(CURVATURE, None, "Ritz residual bound of `lambda_min`"),
    "trace": Variable(CURVATURE, None, "Hessian trace (Hutchinson)"),
    "trace_error": Variable(CURVATURE, None, "standard error of `trace`"),
    "fresh_devices": Variable(ACCURACY, None, "accuracy on fresh simulated devices (new fabrication seeds), mean"),
    "fresh_devices_std": Variable(ACCURACY, None, "sample std of `fresh_devices` over its devices"),
    "mesh_transfer": Variable(ACCURACY, "mesh_transfer_sigma", "the same phases on fresh modelled meshes, mean"),
    "mesh_transfer_std": Variable(ACCURACY, "mesh_transfer_sigma", "sample std of `mesh_transfer` over its meshes"),
    "coupler_errors": Variable(ACCURACY, "coupler_sigma_bs", "accuracy on one device with larger coupler errors"),
    "forwards": Variable("device forward passes", None, "device forwards the training run made"),
    "bench_time": Variable("s", None, "bench time the training run took"),
    "wall": Variable("s", None, "wall time of the cell"),
}
"""Every variable a cell stores, with the unit the NetCDF variable carries (its ``units`` attribute)."""


@dataclass(frozen=True)
class Extras:
    """What a measure stores besides its own variable (its uncertainty) and the spec keys it reads."""

    variables: tuple[str, ...]
    settings: tuple[str, ...]


EXTRAS: dict[str, Extras] = {
    "noise": Extras(("noise_std",), ("read_noise", "read_noise_draws")),
    "control_noise": Extras(("control_noise_std",), ("control_noise_v", "read_noise_draws")),
    "transfer": Extras(("transfer_std",), ("transfer_sigma_nm", "transfer_chips")),
    "lambda_max": Extras(("lambda_max_error",), ("hessian_samples", "lanczos_steps")),
    "lambda_min": Extras(("lambda_min_error",), ("hessian_samples", "lanczos_steps")),
    "trace": Extras(("trace_error",), ("hessian_samples", "trace_probes")),
    "fresh_devices": Extras(("fresh_devices_std",), ("fresh_device_count",)),
    "mesh_transfer": Extras(("mesh_transfer_std",), ("mesh_transfer_sigma", "transfer_chips")),
    "coupler_errors": Extras((), ("coupler_sigma_bs",)),
}
"""A cell carries only the settings of its measures, so changing one measure's settings does not
invalidate the stored cells of a sweep that never took it."""

NO_EXTRAS = Extras((), ())

AXIS_UNITS: dict[str, str] = {
    "drift_k": "K",
    "read_noise": NOISE.unit,
    "control_noise_v": "V",
    "transfer_sigma_nm": TRANSFER.unit,
    "mesh_transfer_sigma": SPLIT,
    "coupler_sigma_bs": SPLIT,
}
"""The units of the per-cell lists (the Dataset's extra coordinates)."""


def variables_of(measure: str) -> tuple[str, ...]:
    """The variables ``measure`` stores (itself, and its uncertainty where it has one)."""
    return (measure, *EXTRAS.get(measure, NO_EXTRAS).variables)


def sweep_bench(name: str) -> BenchFile:
    """The parsed bench file ``name`` (a path, else a built-in bench file) that every cell opens a copy of."""
    path = Path(name)
    return load_bench_file(path if path.exists() else builtin_bench_path(name))


class SpecError(LabsatError):
    """A sweep spec that cannot run; the message names the file and the key."""


class SweepSpec(BaseModel):
    """A grid of training runs on a simulated bench and the measures taken after each.

    ``axes`` maps a :class:`TrainConfig` field (``seed`` included) to the values it takes; the grid is their
    Cartesian product. ``base`` holds the settings every cell shares. ``bench`` is a built-in bench file
    (``sim-mzi.yaml``) or a path to one; it must be simulated, since every cell opens its own copy.
    The defaults of the chip-model measures keep a cell cheap (20 Lanczos steps, 10 trace probes).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    dataset: str = "iris"
    base: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]] = Field(min_length=1)
    measure: list[Measure] = Field(default_factory=lambda: list[Measure](["accuracy"]), min_length=1)
    drift_k: list[float] = Field(default_factory=lambda: [0.0, -0.5, -1.0])
    bench: str = DEFAULT_BENCH
    read_noise: list[float] = Field(default_factory=lambda: [0.0, 0.05, 0.1], min_length=1)
    control_noise_v: list[float] = Field(default_factory=lambda: [0.0, 0.02, 0.05], min_length=1)
    read_noise_draws: int = Field(3, ge=1, le=100)
    transfer_sigma_nm: list[float] = Field(default_factory=lambda: [0.0, 0.04, 0.08], min_length=1)
    transfer_chips: int = Field(TRANSFER.min_seeds, ge=TRANSFER.min_seeds, le=100)
    mesh_transfer_sigma: list[float] = Field(default_factory=lambda: list(MESH_TRANSFER.values), min_length=1)
    coupler_sigma_bs: list[float] = Field(default_factory=lambda: [0.25, 0.3, 0.4, 0.5], min_length=1)
    fresh_device_count: int = Field(5, ge=2, le=100)
    hessian_samples: int = Field(100, ge=1, le=10_000)
    lanczos_steps: int = Field(20, ge=1, le=1000)
    trace_probes: int = Field(10, ge=2, le=10_000)

    @model_validator(mode="after")
    def _lists_are_non_negative(self) -> SweepSpec:
        for key in ("read_noise", "control_noise_v", "transfer_sigma_nm", "mesh_transfer_sigma", "coupler_sigma_bs"):
            for i, value in enumerate(getattr(self, key)):
                if not value >= 0:
                    raise ValueError(f"{key}[{i}] = {value!r}: a spread must be >= 0")
        return self

    @model_validator(mode="after")
    def _bench_is_simulated_and_takes_the_measures(self) -> SweepSpec:
        try:
            spec = sweep_bench(self.bench)
        except LabsatError as error:
            raise ValueError(f"bench {self.bench!r}: {error}") from None
        if spec.clock != "virtual":
            raise ValueError(
                f"bench {self.bench!r} is not simulated (clock {spec.clock!r}): a sweep opens one per cell"
            )
        twins = [*self.axes.get("twin", []), *([self.base["twin"]] if "twin" in self.base else [])]
        for twin in twins:
            if twin not in TWINS:
                raise ValueError(f"twin {twin!r} is not one of: {', '.join(TWINS)}")
            system_needed = TWINS[twin]
            if system_needed is not None and spec.system.type != system_needed[0]:
                raise ValueError(
                    f"twin {twin!r} trains on {system_needed[1]}; bench {self.bench!r} is a {spec.system.label}"
                )
        takes = SYSTEM_MEASURES.get(spec.system.type, frozenset())
        for measure in self.measure:
            kinds = [kind for kind, measures in SYSTEM_MEASURES.items() if measure in measures]
            if kinds and measure not in takes:
                needs = " or ".join(SYSTEM_LABELS[kind] for kind in kinds)
                raise ValueError(f"measure {measure} needs {needs}; bench {self.bench!r} is a {spec.system.label}")
        if "validation_drift" in self.measure:
            fractions = [self.base.get("validation_fraction"), *self.axes.get("validation_fraction", [])]
            if 0 in fractions:
                raise ValueError("measure validation_drift needs a validation split; validation_fraction is 0")
        return self

    @model_validator(mode="after")
    def _cells_are_train_configs(self) -> SweepSpec:
        fields = set(TrainConfig.model_fields)
        for key in (*self.base, *self.axes):
            if key not in fields | {"twin"}:
                raise ValueError(f"{key!r} is not a training setting (one of: {', '.join(sorted(fields))}) or twin")
        training = {key: value for key, value in self.base.items() if key in fields}
        for key, values in self.axes.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"axis {key!r} repeats a value")
            for i, value in enumerate(values):
                if key not in fields:
                    continue
                try:
                    TrainConfig(**{**training, key: value})
                except ValidationError as error:
                    reason = "; ".join(e["msg"] for e in error.errors())
                    raise ValueError(f"axes.{key}[{i}] = {value!r}: {reason}") from None
        return self

    def cell_settings(self) -> dict[str, Any]:
        """What a cell receives besides its training settings: the data, the bench, its measures' settings."""
        keys = {key for measure in self.measure for key in EXTRAS.get(measure, NO_EXTRAS).settings}
        out: dict[str, Any] = {"dataset": self.dataset, "measure": list(self.measure), "drift_k": list(self.drift_k)}
        if self.bench != DEFAULT_BENCH:  # cells of the default bench keep the ids they were stored under
            out["bench"] = self.bench
        out.update({key: getattr(self, key) for key in sorted(keys)})
        return out

    def unit(self, variable: str) -> str:
        """The unit ``variable`` carries in this sweep: a curvature's is that of the bench's controls."""
        unit = VARIABLES[variable].unit
        return CURVATURE_UNITS[sweep_bench(self.bench).system.type] if unit == CURVATURE else unit

    def settings(self) -> dict[str, Any]:
        """The spec as plain data (what a cell, a worker and the dataset's attributes receive)."""
        return self.model_dump(mode="json")


def load_spec(path: Path) -> SweepSpec:
    """The spec in ``path``; any error names the file and the key it is about."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"{path}: {error}") from error
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as error:
        lines = [_line(path, e["loc"], e["msg"]) for e in error.errors()]
        raise SpecError("\n".join(lines)) from error


def _line(path: Path, loc: tuple[int | str, ...], message: str) -> str:
    """``FILE: KEY: message``; a whole-spec check names its key in the message itself."""
    message = message.removeprefix("Value error, ")
    return f"{path}: {'.'.join(map(str, loc))}: {message}" if loc else f"{path}: {message}"
