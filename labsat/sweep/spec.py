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
from labsat.evaluation.sweeps import NOISE, TRANSFER
from labsat.training.config import TrainConfig

Measure = Literal[
    "accuracy",
    "drift",
    "chip_accuracy",
    "noise",
    "control_noise",
    "transfer",
    "lambda_max",
    "lambda_min",
    "trace",
    "forwards",
    "bench_time",
    "wall",
]

CHIP_MEASURES = frozenset(
    {"drift", "chip_accuracy", "noise", "control_noise", "transfer", "lambda_max", "lambda_min", "trace"}
)
"""Measures taken on a bank's chip model (warmed, made noisy, redrawn: :mod:`labsat.evaluation.chips`)."""

ACCURACY = "fraction of the test split"
CURVATURE = "V⁻²"
"""Of the test cross-entropy's curvature over the heater controls, which are volts."""


@dataclass(frozen=True)
class Variable:
    """One stored variable: its unit, the spec list it runs along in a cell (None: a scalar), what it is."""

    unit: str
    axis: str | None
    description: str


VARIABLES: dict[str, Variable] = {
    "accuracy": Variable(ACCURACY, None, "accuracy on the device after training"),
    "drift": Variable(ACCURACY, "drift_k", "accuracy on the device with the chip ΔT warmer"),
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
}
"""A cell carries only the settings of its measures, so changing one measure's settings does not
invalidate the stored cells of a sweep that never took it."""

NO_EXTRAS = Extras((), ())

AXIS_UNITS: dict[str, str] = {
    "drift_k": "K",
    "read_noise": NOISE.unit,
    "control_noise_v": "V",
    "transfer_sigma_nm": TRANSFER.unit,
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
    hessian_samples: int = Field(100, ge=1, le=10_000)
    lanczos_steps: int = Field(20, ge=1, le=1000)
    trace_probes: int = Field(10, ge=2, le=10_000)

    @model_validator(mode="after")
    def _lists_are_non_negative(self) -> SweepSpec:
        for key in ("read_noise", "control_noise_v", "transfer_sigma_nm"):
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
        chip = [measure for measure in self.measure if measure in CHIP_MEASURES]
        if chip and spec.system.type != "mrr_bank":
            raise ValueError(
                f"measure {', '.join(chip)} needs an MRR bank's chip model; bench {self.bench!r} is a "
                f"{spec.system.label}"
            )
        return self

    @model_validator(mode="after")
    def _cells_are_train_configs(self) -> SweepSpec:
        fields = set(TrainConfig.model_fields)
        for key in (*self.base, *self.axes):
            if key not in fields:
                raise ValueError(f"{key!r} is not a training setting (one of: {', '.join(sorted(fields))})")
        for key, values in self.axes.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"axis {key!r} repeats a value")
            for i, value in enumerate(values):
                try:
                    TrainConfig(**{**self.base, key: value})
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
