"""A sweep's stored cells as an xarray Dataset: one dimension per axis, units and settings as attributes.

NetCDF (h5netcdf) for analysis tools, CSV (one row per cell and drift value) for a spreadsheet. A cell that
failed or has not run is NaN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from labsat.sweep.grid import cells
from labsat.sweep.spec import UNITS, SweepSpec
from labsat.sweep.store import CellStore


def sweep_dataset(spec: SweepSpec, folder: Path) -> xr.Dataset:
    """The stored results of ``spec`` under ``folder``."""
    store = CellStore(folder)
    names = list(spec.axes)
    shape = tuple(len(spec.axes[n]) for n in names)
    arrays: dict[str, np.ndarray] = {}
    for measure in spec.measure:
        extra = (len(spec.drift_k),) if measure == "drift" else ()
        arrays[measure] = np.full(shape + extra, np.nan)
    failed = 0
    for cell in cells(spec):
        record = store.get(cell.id)
        if record is None or record["status"] != "ok":
            failed += record is not None
            continue
        for name, value in record["values"].items():
            arrays[name][cell.index] = value
    variables = {}
    for key, array in arrays.items():
        dims = names + (["drift_k"] if key == "drift" else [])
        variables[key] = xr.Variable(dims, array, attrs={"units": UNITS[key]})
    coords: dict[str, Any] = {n: spec.axes[n] for n in names}
    if "drift" in spec.measure:
        coords["drift_k"] = xr.Variable("drift_k", spec.drift_k, attrs={"units": "K"})
    return xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "sweep": spec.name,
            "dataset": spec.dataset,
            "failed_cells": failed,
            "settings": json.dumps(spec.settings(), sort_keys=True),
        },
    )
