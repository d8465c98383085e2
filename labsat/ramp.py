"""Ramp planning: the intermediate outputs that take channels from one setting to another in bounded steps.

Both the guard (every write) and the drivers (restoring outputs an instrument lost) move outputs along
the same ramp, so no path jumps where the guard would have stepped. It lives below both: a driver
must not depend on the guard, and the guard must not depend on a driver.
"""

from __future__ import annotations

import numpy as np


def ramp_steps(start: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    """How many writes the ramp from ``start`` to ``target`` takes (0: nothing moves): the largest move in
    units of its channel's ``max_step``, rounded up. Broadcasts over leading axes, so a scheduler can price
    many candidate moves at once (then an array of counts)."""
    moves = np.abs(np.asarray(target, dtype=float) - np.asarray(start, dtype=float))
    steps = np.ceil(moves / max_step).max(axis=-1)
    return np.where(moves.max(axis=-1) > 0, np.maximum(steps, 1), 0).astype(int)


def ramp_points(start: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> list[np.ndarray]:
    """The points of a straight ramp from ``start`` to ``target`` with no channel moving more than its
    ``max_step`` at once (``inf``: one step); empty when there is nothing to move.
    """
    steps = int(ramp_steps(start, target, max_step))
    return [target if k == steps else start + (target - start) * (k / steps) for k in range(1, steps + 1)]
