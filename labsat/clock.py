"""Clocks: real time for benches, virtual time for simulators.

Simulated instruments advance a :class:`VirtualClock` by their settle and integration times instead of
sleeping, so a simulated run finishes fast yet still reports how long it would take on the bench.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Time source shared by the devices of one bench and by the guard's ramp delays."""

    def now(self) -> float:
        """Seconds since an arbitrary origin."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (really, or by advancing virtual time)."""
        ...


class RealClock:
    """Wall-clock time for real instruments."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Simulated time: ``sleep`` advances the clock immediately and returns."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def advance(self, seconds: float) -> None:
        """Account for time an instrument spends on an operation (integration, a bus transfer)."""
        self.sleep(seconds)
