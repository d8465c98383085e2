"""Ramp planning: the intermediate outputs that take channels from one setting to another in bounded steps.

Both the guard (every write) and the drivers (restoring outputs an instrument lost) move outputs along
the same ramp, so no path jumps where the guard would have stepped. It lives below both: a driver
must not depend on the guard, and the guard must not depend on a driver.
"""

from __future__ import annotations

import numpy as np


def ramp_points(start: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> list[np.ndarray]:
    """The points of a straight ramp from ``start`` to ``target`` with no channel moving more than its
    ``max_step`` at once (``inf``: one step); empty when there is nothing to move.
    """
    if np.array_equal(target, start):
        return []
    steps = max(1, int(np.max(np.ceil(np.abs(target - start) / max_step))))
    return [target if k == steps else start + (target - start) * (k / steps) for k in range(1, steps + 1)]
