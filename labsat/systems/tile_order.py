"""Tile schedules: the order in which a layer's tiles are programmed, so heater moves between them stay short.

A logical layer larger than the bank is programmed tile by tile, and every program is ramped by the guard in
steps of at most ``max_step``: a move of ``k·max_step`` costs ``k`` bus writes and ``k − 1`` step delays before
the heater settle even starts. The tiles of one layer may be measured in any order (their partial sums
add up the same), so the order is chosen greedily: from the heaters' present outputs, always the remaining
tile whose ramp is shortest (fewest writes, then smallest largest move). Nothing here touches a limit: the
guard still ramps every move, only the moves it is asked for are shorter.
"""

from __future__ import annotations

import numpy as np

from labsat.ramp import ramp_steps


def nearest_order(start: np.ndarray, programs: np.ndarray, max_step: np.ndarray) -> list[int]:
    """Indices of ``programs`` ``(T, n)`` in a greedy shortest-ramp order from outputs ``start`` ``(n,)``.

    Ties go to the smaller largest move, then to the earlier tile, so the order is deterministic.
    """
    remaining = list(range(programs.shape[0]))
    order: list[int] = []
    present = np.asarray(start, dtype=float)
    while remaining:
        candidates = programs[remaining]
        writes = ramp_steps(present, candidates, max_step)
        largest = np.abs(candidates - present).max(axis=-1)
        best = remaining[int(np.lexsort((np.arange(len(remaining)), largest, writes))[0])]
        order.append(best)
        remaining.remove(best)
        present = programs[best]
    return order
