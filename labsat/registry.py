"""Device drivers are found through the ``labsat.devices`` entry-point group (:mod:`labsat.entrypoints`).

A lab adds its own instrument by publishing a package with an entry point in that group; labsat
never needs editing. An entry point names a factory ``(name, spec, context) -> device``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labsat.benchfile import BenchFile, DeviceSpec
from labsat.clock import Clock
from labsat.entrypoints import DRIVERS, entry_points_of, known_drivers
from labsat.errors import LabsatError


@dataclass
class BenchContext:
    """What a driver factory may use besides its own spec.

    ``shared`` lets the devices of one bench share one object, e.g. the simulated chip behind the
    simulated heaters, modulators and detectors, so a heater write moves a detector reading.
    """

    bench: BenchFile
    path: str
    clock: Clock
    torch_device: torch.device
    data_dir: Path | None = None
    shared: dict[str, Any] = field(default_factory=dict)


DeviceFactory = Callable[[str, DeviceSpec, BenchContext], Any]


def driver_factory(driver: str) -> DeviceFactory:
    """Load the factory registered for ``driver``."""
    try:
        entry = entry_points_of(DRIVERS)[driver]
    except KeyError:
        raise LabsatError(f"unknown driver {driver!r} (known: {', '.join(sorted(known_drivers()))})") from None
    return entry.load()
