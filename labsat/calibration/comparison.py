"""Two calibrations of one system kind compared parameter by parameter: what drifted between them.

Any record can be compared with another of its kind: each record says what its comparable quantities are
(:meth:`comparable`, nested lists of numbers with ``None`` where it fitted nothing, such as a flagged
ring), and the comparison needs nothing else of it. ``labsat calibrations A B`` and tests use it.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from labsat.errors import LabsatError


class Comparable(Protocol):
    """A calibration record as a comparison reads it."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def comparable(self) -> dict[str, Any]:
        """Parameter name -> a number or nested lists of numbers (``None``: not fitted, left out)."""
        ...


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterDifference(_Model):
    """``b − a`` for one parameter, over the elements both records fitted."""

    name: str
    count: int
    mean: float | None
    rms: float | None
    max_abs: float | None
    worst_index: list[int] | None = Field(None, description="Position of the largest |b − a|.")


class RecordComparison(_Model):
    a: str
    b: str
    parameters: list[ParameterDifference]


def compare(a: Comparable, b: Comparable) -> RecordComparison:
    """Per-parameter differences ``b − a`` of two records of one kind (elements either left unfitted are skipped)."""
    if a.kind != b.kind:
        raise LabsatError(
            f"calibration {a.id} is a {a.kind} calibration and {b.id} a {b.kind} one: compare two of one kind"
        )
    fields_a, fields_b = a.comparable(), b.comparable()
    differences = []
    for name, values_a in fields_a.items():
        if name not in fields_b:
            raise LabsatError(f"calibration {b.id} has no {name!r} to compare with calibration {a.id}'s")
        pairs = [
            (index, value_b - value_a)
            for index, (value_a, value_b) in _flat_pairs(values_a, fields_b[name], name)
            if value_a is not None and value_b is not None
        ]
        differences.append(_difference(name, pairs))
    return RecordComparison(a=a.id, b=b.id, parameters=differences)


def _difference(name: str, pairs: list[tuple[tuple[int, ...], float]]) -> ParameterDifference:
    if not pairs:
        return ParameterDifference(name=name, count=0, mean=None, rms=None, max_abs=None)
    diffs = [d for _, d in pairs]
    worst = max(pairs, key=lambda pair: abs(pair[1]))
    return ParameterDifference(
        name=name,
        count=len(diffs),
        mean=sum(diffs) / len(diffs),
        rms=math.sqrt(sum(d * d for d in diffs) / len(diffs)),
        max_abs=abs(worst[1]),
        worst_index=list(worst[0]),
    )


def _flat_pairs(
    a: Any, b: Any, name: str, index: tuple[int, ...] = ()
) -> list[tuple[tuple[int, ...], tuple[float | None, float | None]]]:
    """Matching leaves of two nested lists, with their positions (shapes must agree)."""
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            raise LabsatError(f"the two calibrations' {name!r} have different shapes: they describe different chips")
        return [
            pair for i, (x, y) in enumerate(zip(a, b, strict=True)) for pair in _flat_pairs(x, y, name, (*index, i))
        ]
    if isinstance(b, list):
        raise LabsatError(f"the two calibrations' {name!r} have different shapes: they describe different chips")
    return [(index, (None if a is None else float(a), None if b is None else float(b)))]
