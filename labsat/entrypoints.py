"""Plugins found through entry-point groups: what is installed, by name, without loading any of it.

The bench-file schema checks a ``driver:`` name against the installed drivers while it parses, and the
driver registry (:mod:`labsat.registry`) loads the factory a name stands for; the store finds the record
class of a stored calibration's kind. They all read these tables, which depend on nothing else in
labsat, so the schema never imports the registry built on it and the store never imports the
calibration procedures whose records it holds. A lab adds a plugin by publishing a package with an
entry point in the group.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

DRIVERS = "labsat.devices"
"""Device drivers: an entry point names a factory ``(name, spec, context) -> device``."""

RECORDS = "labsat.records"
"""Calibration record classes by kind (a bench file's ``system.type``): what the store decodes a record as."""


@cache
def entry_points_of(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of ``group``, by name (read once per process)."""
    return {entry.name: entry for entry in entry_points(group=group)}


def known_drivers() -> set[str]:
    """Names usable as ``driver:`` in a bench file."""
    return set(entry_points_of(DRIVERS))
