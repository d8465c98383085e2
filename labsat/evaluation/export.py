"""An evaluation as labelled arrays: the models side by side along ``model``, every sweep on its own axis.

``labsat evaluate --export nc|csv`` writes it (:mod:`labsat.labelled`): accuracy per model, sweep value
and seed with the sweep's unit, the clean and device accuracy, and the sharpness numbers with their
uncertainties; each model's training settings and evaluation metadata go into the attributes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from labsat.evaluation.report import ModelEvaluation

ACCURACY = "fraction of the test split"
SHARPNESS = "loss per control unit²"
"""Second derivatives of the loss in control space (a bank's controls are volts, a mesh's radians)."""


def evaluation_dataset(evaluations: Sequence[ModelEvaluation]) -> xr.Dataset:
    """The evaluations of one run (same sweeps and seeds for every model) as one Dataset."""
    models = [ev.name for ev in evaluations]
    variables: dict[str, xr.Variable] = {}
    coords: dict[str, xr.Variable] = {"model": xr.Variable("model", models)}
    for field in ("accuracy", "device_accuracy"):
        values = [getattr(ev, field) for ev in evaluations]
        variables[field] = xr.Variable("model", _floats(values), attrs={"units": ACCURACY})
    for name in dict.fromkeys(name for ev in evaluations for name in ev.sweeps):
        results = [ev.sweeps.get(name) for ev in evaluations]
        first = next(result for result in results if result is not None)
        coords[name] = xr.Variable(
            name, list(first.values), attrs={"units": first.spec.unit, "long_name": first.spec.label}
        )
        coords[f"{name}_seed"] = xr.Variable(f"{name}_seed", list(first.seeds))
        grid = np.full((len(models), len(first.values), len(first.seeds)), np.nan)
        for index, result in enumerate(results):
            if result is not None:
                if (result.values, result.seeds) != (first.values, first.seeds):
                    raise ValueError(f"model {models[index]}'s {name} sweep has other values or seeds than the first's")
                grid[index] = result.accuracy.double().numpy()
        variables[f"accuracy_{name}"] = xr.Variable(("model", name, f"{name}_seed"), grid, attrs={"units": ACCURACY})
    sharp = [ev.sharpness.as_dict() if ev.sharpness else {} for ev in evaluations]
    for key in ("lambda_max", "lambda_max_error", "lambda_min", "lambda_min_error", "trace", "trace_stderr"):
        if any(sharp):
            variables[key] = xr.Variable("model", _floats([s.get(key) for s in sharp]), attrs={"units": SHARPNESS})
    attrs = {
        "models": json.dumps(
            {ev.name: {"method": ev.method, "settings": ev.settings, "metadata": ev.metadata} for ev in evaluations},
            sort_keys=True,
            default=str,
        ),
        "chance": json.dumps({ev.name: ev.chance for ev in evaluations}),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _floats(values: Sequence[float | int | bool | None]) -> np.ndarray:
    return np.array([np.nan if value is None else float(value) for value in values])
