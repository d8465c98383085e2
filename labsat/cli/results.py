"""A job's result as a table a person reads: percents, short numbers, download links, no raw structures.

A job's ``result`` is plain JSON made for programs (``--json`` prints it whole). On a terminal it becomes
rows of ``field  value``: nested groups flatten to dotted names (``queries.forwards``), accuracies read
as percents, floats as four significant digits, artifacts as the URLs that download them, and anything
bulky (a confusion matrix, a sweep's points, a long list) as one line saying what it is and that
``--json`` has it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.table import Table

MAX_DEPTH = 2
"""Nesting levels flattened into dotted names; deeper groups are summarised."""

MAX_INLINE = 6
"""Longest list of plain values printed in full."""

ARTIFACTS = "artifacts"


def number(key: str, value: float | int) -> str:
    """An accuracy (a fraction in [0, 1]) as a percent; other floats with four significant digits."""
    if isinstance(value, int):  # bools too
        return str(value)
    if "accuracy" in key and 0.0 <= value <= 1.0:
        return f"{value:.1%}"
    return f"{value:.4g}"


def value_text(key: str, value: Any) -> str:
    """One cell: a plain value as text, a structure as what it is."""
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return number(key, value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if value and all(isinstance(item, list) for item in value):
            return f"{len(value)}×{len(value[0])} matrix (--json)"
        if len(value) <= MAX_INLINE and all(isinstance(item, str | int | float) for item in value):
            return ", ".join(value_text(key, item) for item in value)
        return f"{len(value)} entries (--json)"
    if isinstance(value, dict):
        return f"{len(value)} fields (--json)"
    return str(value)


def flat_rows(data: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """``(dotted name, text)`` for every field; groups down to :data:`MAX_DEPTH` are opened."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < MAX_DEPTH and value:
            yield from flat_rows(value, f"{name}.", depth + 1)
        elif (
            isinstance(value, list)
            and depth < MAX_DEPTH
            and 0 < len(value) <= MAX_INLINE
            and all(isinstance(item, dict) for item in value)
        ):
            for index, item in enumerate(value):
                label = item.get("name") or item.get("model") or index
                yield from flat_rows(item, f"{name}[{label}].", depth + 1)
        else:
            yield name, value_text(key, value)


def artifact_url(base_url: str, ref: str) -> str:
    """Where ``GET /api/artifacts/...`` serves an artifact a job names as ``kind/id/file``."""
    return f"{base_url.rstrip('/')}/api/artifacts/{ref}"


def result_table(title: str, result: dict[str, Any], *, base_url: str, error: str | None = None) -> Table:
    """A job's result (and error) as ``field  value`` rows; artifacts as download URLs, one per row."""
    table = Table(title=title)
    table.add_column("field", overflow="fold")
    table.add_column("value", overflow="fold")
    if error:
        table.add_row("error", error)
    for name, text in flat_rows({key: value for key, value in result.items() if key != ARTIFACTS}):
        table.add_row(name, text)
    for ref in result.get(ARTIFACTS) or []:
        table.add_row("artifact", artifact_url(base_url, str(ref)))
    return table
