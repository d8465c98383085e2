"""Plugins found through entry-point groups: what is installed, by name, without loading any of it.

The bench-file schema checks a ``driver:`` name against the installed drivers while it parses, and the
driver registry (:mod:`labsat.registry`) loads the factory a name stands for; the schema validates a
``system:`` section with the spec of the system kind its ``type`` names, the ``sim`` driver asks that kind
for its simulated chip and the store reads a stored calibration as its kind's record class. They all
read these tables, which depend on nothing else in labsat, so the schema never imports the registry
built on it and the store never imports the calibration procedures whose records it holds (a kind is
loaded only when one is asked for). A lab adds a plugin by publishing a package with an entry point in
the group.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from labsat.errors import LabsatError

DRIVERS = "labsat.devices"
"""Device drivers: an entry point names a factory ``(name, spec, context) -> device``."""

SYSTEMS = "labsat.systems"
"""System kinds by the bench file's ``system.type`` (:class:`labsat.systems.kind.SystemKind`)."""

JOB_KINDS = "labsat.jobs"
"""Job kinds a service offers besides labsat's own: an entry point names a :class:`labsat.jobs.kinds.JobKind`."""


@cache
def entry_points_of(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of ``group``, by name (read once per process)."""
    return {entry.name: entry for entry in entry_points(group=group)}


def known_drivers() -> set[str]:
    """Names usable as ``driver:`` in a bench file."""
    return set(entry_points_of(DRIVERS))


class UnknownSystemKind(LabsatError):
    """A ``system.type`` no installed kind describes, or a kind that cannot be loaded."""


def known_system_types() -> list[str]:
    """Every ``system.type`` an installed kind describes, sorted."""
    return sorted(entry_points_of(SYSTEMS))


@cache
def load_system_kind(system_type: str) -> Any:
    """The kind object the ``labsat.systems`` entry point ``system_type`` names, loaded once.

    Typed by :func:`labsat.systems.kind.system_kind`, which is what the layers above call.
    """
    entry = entry_points_of(SYSTEMS).get(system_type)
    if entry is None:
        known = ", ".join(known_system_types()) or "none installed (reinstall labsat: its entry points are missing)"
        raise UnknownSystemKind(f"unknown system type {system_type!r} (known: {known})")
    try:
        kind = entry.load()
    except (ImportError, AttributeError) as exc:
        raise UnknownSystemKind(f"the system kind {system_type!r} ({entry.value}) cannot be loaded: {exc}") from exc
    if getattr(kind, "type", None) != system_type:
        raise UnknownSystemKind(
            f"the {SYSTEMS} entry point {system_type!r} names a kind of type {getattr(kind, 'type', None)!r}: "
            "the two must agree"
        )
    return kind


def forget_system_kinds() -> None:
    """Look the entry points up again on next use (after installing a kind into a running interpreter)."""
    entry_points_of.cache_clear()
    load_system_kind.cache_clear()
