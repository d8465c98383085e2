"""A job's metrics as files: ``metrics.npz`` (one array per metric) and ``metrics.png`` (one panel each).

Written by the worker when any job that recorded metrics ends, whatever its kind, so every training
run (and any plugin kind that reports metrics) gets its curves without code of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from labsat.plots import save

AXES = ("step", "epoch")
"""Keys used as the x axis, in this order of preference; without any, points are numbered."""


def metric_arrays(points: Sequence[Mapping[str, object]]) -> dict[str, np.ndarray]:
    """Every numeric key as an array over the points (NaN where a point lacks it)."""
    keys = dict.fromkeys(key for point in points for key, value in point.items() if _number(value))
    return {key: np.array([_as_float(p.get(key)) for p in points]) for key in keys}


def write_metrics(points: Sequence[Mapping[str, object]], folder: Path) -> list[Path]:
    """Write the arrays and the plot into ``folder``; returns the files."""
    arrays = metric_arrays(points)
    np.savez(folder / "metrics.npz", **arrays)  # type: ignore[arg-type]
    axis = next((key for key in AXES if key in arrays), None)
    x = arrays[axis] if axis is not None else np.arange(1, len(points) + 1, dtype=float)
    series = [key for key in arrays if key not in AXES]
    if not series:
        return [folder / "metrics.npz"]
    figure = Figure(figsize=(4.0 * len(series), 3.0), layout="constrained")
    for ax, key in zip(figure.subplots(1, len(series), squeeze=False)[0], series, strict=True):
        ax.plot(x, arrays[key], "o-", markersize=3)
        ax.set_xlabel(axis or "point")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    return [folder / "metrics.npz", save(figure, folder / "metrics.png")]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: object) -> float:
    """A point's number, or NaN where it has none (a missing key, a text, a flag)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
