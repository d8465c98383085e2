"""A calibration record as labelled arrays: every fitted quantity a variable, with its unit and the run's settings.

``labsat calibrations ID --export nc|csv`` writes it (:mod:`labsat.labelled`), so a lab can follow its chips'
parameters across calibrations in xarray or a spreadsheet. The variables are the record's comparable
quantities (what ``labsat calibrations A B`` compares); a ring whose fit was flagged is NaN.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import numpy as np
import xarray as xr

from labsat.calibration.comparison import Comparable

_UNIT_TOKENS = {"nm": "nm", "mw": "mW", "ohm": "ohm", "v": "V", "volts": "V", "k": "K", "deg": "deg", "rad": "rad"}
_DIMENSIONLESS = frozenset({"depth", "crosstalk_kernel"})
"""Quantities that are fractions: a drop depth, the share of a heater's power a neighbour receives."""


def unit_of(name: str) -> str | None:
    """The unit a quantity's name spells (``efficiency_nm_per_mw`` → ``nm/mW``, ``modulator_v_pi`` → ``V``).

    None where the name names none: the file then says nothing rather than guess.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _DIMENSIONLESS:
        return "1"
    if leaf.endswith("_v_pi"):
        return "V"
    numerator, per, denominator = leaf.partition("_per_")
    top = _UNIT_TOKENS.get(numerator.rsplit("_", 1)[-1])
    if not per:
        return top
    bottom = _UNIT_TOKENS.get(denominator.split("_", 1)[0])
    return None if top is None or bottom is None else f"{top}/{bottom}"


def _array(values: Any) -> np.ndarray:
    """Nested lists of numbers with None (not fitted) as a float array with NaN."""
    return np.array(values, dtype=object).astype(float)


class Exportable(Comparable, Protocol):
    """A calibration record as the export reads it: comparable, and a pydantic model of its run."""

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


def run_settings(record: Exportable) -> dict[str, Any]:
    """How the record was made: its bench, times, temperature and options, without the measured results."""
    dumped = record.model_dump(mode="json")
    return {key: value for key, value in dumped.items() if key == "options" or not isinstance(value, dict)}


def calibration_dataset(record: Exportable) -> xr.Dataset:
    """The record's fitted quantities; ring maps of the bank's shape share the ``row`` and ``col`` dimensions."""
    settings = run_settings(record)
    bank = (getattr(record, "rows", None), getattr(record, "cols", None))
    variables = {}
    for name, values in record.comparable().items():
        array = _array(values)
        dims = ["row", "col"] if array.shape == bank else [f"{name}_{axis}" for axis in range(array.ndim)]
        unit = unit_of(name)
        variables[name] = xr.Variable(dims, array, attrs={"long_name": name, **({"units": unit} if unit else {})})
    attrs = {"calibration": record.id, "kind": record.kind, "settings": json.dumps(settings, sort_keys=True)}
    return xr.Dataset(variables, attrs=attrs)
