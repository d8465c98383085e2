"""The sweep declaration: axes over training settings, what to measure, validated with file-and-key errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labsat.errors import LabsatError
from labsat.training.config import TrainConfig

Measure = Literal["accuracy", "drift", "forwards", "bench_time", "wall"]
UNITS: dict[str, str] = {
    "accuracy": "fraction of the test split",
    "drift": "fraction of the test split",
    "forwards": "device forward passes",
    "bench_time": "s",
    "wall": "s",
}
"""The unit every measure is stored with (the NetCDF variables' ``units`` attribute)."""


class SpecError(LabsatError):
    """A sweep spec that cannot run; the message names the file and the key."""


class SweepSpec(BaseModel):
    """A grid of training runs on the default simulated bench and the measures taken after each.

    ``axes`` maps a :class:`TrainConfig` field (``seed`` included) to the values it takes; the grid is their
    Cartesian product. ``base`` holds the settings every cell shares.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    dataset: str = "iris"
    base: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]] = Field(min_length=1)
    measure: list[Measure] = Field(default_factory=lambda: list[Measure](["accuracy"]), min_length=1)
    drift_k: list[float] = Field(default_factory=lambda: [0.0, -0.5, -1.0])

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
