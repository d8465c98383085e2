"""A sweep's stored cells as an xarray Dataset: one dimension per axis, units and settings as attributes.

NetCDF (h5netcdf) for analysis tools, CSV (one row per cell and list value) for a spreadsheet. A cell that
failed or has not run is NaN. A measure taken along a spec list (``drift`` along ``drift_k``, ``noise``
along ``read_noise``, ``transfer`` along ``transfer_sigma_nm``) gets that list as one more dimension.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from labsat.sweep.grid import cells
from labsat.sweep.spec import AXIS_UNITS, VARIABLES, SweepSpec, variables_of
from labsat.sweep.store import CellStore


def sweep_dataset(spec: SweepSpec, folder: Path) -> xr.Dataset:
    """The stored results of ``spec`` under ``folder``."""
    store = CellStore(folder)
    names = list(spec.axes)
    shape = tuple(len(spec.axes[n]) for n in names)
    arrays: dict[str, np.ndarray] = {}
    stored = [name for measure in spec.measure for name in variables_of(measure)]
    for name in stored:
        axis = VARIABLES[name].axis
        arrays[name] = np.full(shape + ((len(getattr(spec, axis)),) if axis else ()), np.nan)
    failed = 0
    for cell in cells(spec):
        record = store.get(cell.id)
        if record is None or record["status"] != "ok":
            failed += record is not None
            continue
        for name, value in record["values"].items():
            arrays[name][cell.index] = value
    variables = {}
    coords: dict[str, Any] = {n: spec.axes[n] for n in names}
    for key, array in arrays.items():
        about = VARIABLES[key]
        dims = names + ([about.axis] if about.axis else [])
        variables[key] = xr.Variable(dims, array, attrs={"units": spec.unit(key), "long_name": about.description})
        if about.axis:
            coords[about.axis] = xr.Variable(
                about.axis, getattr(spec, about.axis), attrs={"units": AXIS_UNITS[about.axis]}
            )
    return xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "sweep": spec.name,
            "dataset": spec.dataset,
            "bench": spec.bench,
            "failed_cells": failed,
            "settings": json.dumps(spec.settings(), sort_keys=True),
        },
    )
