"""What a simulated bench knows about itself that a real one cannot: the ground truth behind its instruments.

A simulator puts its chip among the bench's shared objects under :data:`SIMULATED_CHIP`. Evaluation (the
simulated chip's own parameters, read out as the bench measures it) and calibration (the chip's
temperature offset, stored with a record) ask for it through the small protocols here, so no code outside
the simulators needs to know a simulator's class. On a real bench there is none, and they fall back to
what was measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

SIMULATED_CHIP = "simulated_chip"
"""The key of a bench's simulated chip among the objects its devices share."""


@runtime_checkable
class GroundTruth(Protocol):
    """A simulated chip: its seed and its true parameters, in its own system's model."""

    seed: int
    truth: Any


@runtime_checkable
class KnownTemperature(Protocol):
    """A chip whose temperature offset from its reference is known (a simulated one is)."""

    ambient_delta_k: float


def simulated_chip(shared: Mapping[str, Any]) -> object | None:
    """The bench's simulated chip (``shared``: the bench's shared objects), None on a real bench."""
    return shared.get(SIMULATED_CHIP)


def ground_truth(shared: Mapping[str, Any]) -> GroundTruth | None:
    """The simulated chip, if the bench has one that tells its true parameters."""
    chip = simulated_chip(shared)
    return chip if isinstance(chip, GroundTruth) else None


def chip_delta_t_k(shared: Mapping[str, Any]) -> float | None:
    """The chip's temperature offset in K, where the bench can tell (a simulated chip can)."""
    chip = simulated_chip(shared)
    return float(chip.ambient_delta_k) if isinstance(chip, KnownTemperature) else None
