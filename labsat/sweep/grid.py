"""Cells: the points of a sweep's grid, each named by a stable id made of its settings."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from labsat.sweep.spec import SweepSpec


@dataclass(frozen=True)
class Cell:
    """One grid point: its axis values (in axis order) and the id its stored result goes under."""

    index: tuple[int, ...]
    params: dict[str, Any]

    @property
    def id(self) -> str:
        """Hash of the settings, so a changed spec never reuses a cell stored for other settings."""
        text = json.dumps(self.params, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, the last axis varying fastest; ``params`` holds base settings and axis values."""
    names = list(spec.axes)
    ranges = [range(len(spec.axes[n])) for n in names]
    out = []
    for index in itertools.product(*ranges):
        params = dict(spec.base)
        params.update({n: spec.axes[n][i] for n, i in zip(names, index, strict=True)})
        params.update(spec.cell_settings())
        out.append(Cell(index, params))
    return out
