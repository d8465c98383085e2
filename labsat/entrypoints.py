"""Plugins found through entry-point groups: what is installed, by name, without loading any of it.

The bench-file schema checks a ``driver:`` name against the installed drivers while it parses, and the
driver registry (:mod:`labsat.registry`) loads the factory a name stands for. Both read this one
table, which depends on nothing else in labsat, so the schema never imports the registry that is
built on it. A lab adds a plugin by publishing a package with an entry point in the group.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

DRIVERS = "labsat.devices"
"""Device drivers: an entry point names a factory ``(name, spec, context) -> device``."""


@cache
def entry_points_of(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of ``group``, by name (read once per process)."""
    return {entry.name: entry for entry in entry_points(group=group)}


def known_drivers() -> set[str]:
    """Names usable as ``driver:`` in a bench file."""
    return set(entry_points_of(DRIVERS))
