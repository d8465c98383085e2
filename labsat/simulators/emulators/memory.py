"""An in-memory instrument backend: what an emulator drives when no simulated chip stands behind it.

It is at once a VoltageSource (what a DAC or heater emulator writes) and a Detector whose reading is
the present outputs, so tests and benchmarks can wire one emulator's output to another's input, and
it records every state the outputs pass through, so a test can check what the hardware would have
seen between two commands.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

MAX_STATES = 10_000


class MemoryBackend:
    """``n`` outputs held in memory; :attr:`states` lists the outputs after each of the last writes."""

    def __init__(self, n: int, integration_time: float = 1e-3) -> None:
        self.volts = np.zeros(n)
        self.n_channels = n
        self.integration_time = integration_time
        self.states: deque[np.ndarray] = deque(maxlen=MAX_STATES)  # bounded: benchmarks write for minutes
        self.on_write: Callable[[], None] = lambda: None  # a test's hook, called after every write

    def identity(self) -> str:
        return "memory"

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        self.volts[positions] = volts
        self.states.append(self.volts.copy())
        self.on_write()

    def read_voltages(self) -> np.ndarray:
        return self.volts.copy()

    def outputs_off(self) -> None:
        self.volts[:] = 0.0

    def read(self) -> np.ndarray:
        return self.volts.copy()
