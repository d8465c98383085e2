"""Labelled arrays on disk: NetCDF-4 (through h5netcdf) for xarray users, CSV for a spreadsheet.

Sweeps, calibration records and evaluations all leave their numbers as an :class:`xarray.Dataset` with a
``units`` attribute on every variable and the run's settings as attributes; this is where one is written.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

FORMATS = ("nc", "csv")


def write_netcdf(data: xr.Dataset, path: Path) -> Path:
    """Write ``data`` as NetCDF-4 through h5netcdf; returns ``path``."""
    data.to_netcdf(path, engine="h5netcdf")
    return path


def write_csv(data: xr.Dataset, path: Path) -> Path:
    """Write ``data`` flat, one row per coordinate combination; returns ``path``."""
    data.to_dataframe().reset_index().to_csv(path, index=False)
    return path


def write_labelled(data: xr.Dataset, path: Path, fmt: str) -> Path:
    """``data`` in the chosen format (``nc`` or ``csv``) at ``path``; returns ``path``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    return write_netcdf(data, path) if fmt == "nc" else write_csv(data, path)
