"""Comparing two calibrations: per-parameter drift, unfitted elements left out, kinds and shapes checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from labsat.calibration.comparison import compare
from labsat.errors import LabsatError


@dataclass
class _Record:
    id: str
    kind: str
    values: dict[str, Any]

    def comparable(self) -> dict[str, Any]:
        return self.values


def test_differences_skip_what_either_record_left_unfitted() -> None:
    a = _Record("a", "toy", {"gain": 2.0, "offset": [[0.0, 1.0], [None, 3.0]]})
    b = _Record("b", "toy", {"gain": 2.5, "offset": [[0.5, None], [9.0, 2.0]]})
    result = {item.name: item for item in compare(a, b).parameters}
    assert (result["gain"].count, result["gain"].max_abs, result["gain"].worst_index) == (1, 0.5, [])
    offset = result["offset"]
    assert offset.count == 2  # (0,1) unfitted in b, (1,0) in a
    assert offset.worst_index == [1, 1] and offset.max_abs == pytest.approx(1.0)
    assert offset.mean == pytest.approx(-0.25) and offset.rms == pytest.approx((0.625) ** 0.5)


def test_records_of_different_kinds_or_shapes_are_refused_by_name() -> None:
    mesh = _Record("m1", "mzi_mesh", {"phi_offset": [0.0, 0.1]})
    with pytest.raises(LabsatError, match="m1 is a mzi_mesh calibration and b1 a mrr_bank one"):
        compare(mesh, _Record("b1", "mrr_bank", {"phi_offset": [0.0, 0.1]}))
    with pytest.raises(LabsatError, match="'phi_offset' have different shapes"):
        compare(mesh, _Record("m2", "mzi_mesh", {"phi_offset": [0.0, 0.1, 0.2]}))
    with pytest.raises(LabsatError, match="m3 has no 'phi_offset'"):
        compare(mesh, _Record("m3", "mzi_mesh", {}))
