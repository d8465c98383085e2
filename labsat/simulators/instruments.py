"""The simulated instruments: voltage sources and detectors that are thin views on a simulated chip.

A heater write moves a detector reading exactly as on the bench, because both talk to one chip
(:class:`SimulatedChip`). A source keeps every write it received (:attr:`SimVoltageSource.history`), so tests
can prove what the guard let through, and with a state file its outputs survive the process, as a real
instrument's do.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from labsat.clock import Clock
from labsat.errors import InstrumentError
from labsat.simulators.detection import DetectionConfig, InstrumentConfig

STATE_SAVE_INTERVAL_S = 0.2
"""Longest a simulated source's state file lags its outputs while the process lives."""
HISTORY_LIMIT = 10_000
"""Writes a simulated source remembers; beyond it the oldest half goes, so a long-lived service's simulated
bench stays at a few MB however many jobs it runs (each write holds two arrays of its channels)."""


class DetectedChip(Protocol):
    """What a :class:`SimDetector` needs from the simulated chip behind it (any simulator)."""

    config: DetectionConfig
    clock: Clock
    seed: int
    detector_kind: str

    @property
    def label(self) -> str: ...

    def channel_count(self, role: str) -> int: ...

    def read_detectors(self) -> Tensor: ...


class SimulatedChip(DetectedChip, Protocol):
    """What the simulated voltage sources also need: an integrated chip with heaters and modulators (MRR, MZI)."""

    config: InstrumentConfig

    @property
    def heater_volts(self) -> Tensor: ...

    @property
    def modulator_volts(self) -> Tensor: ...

    def set_heaters(self, positions: Tensor, volts: Tensor, *, settled: bool = False) -> None: ...

    def set_modulators(self, positions: Tensor, volts: Tensor) -> None: ...


class VoltageWrite(NamedTuple):
    """One write a simulated source received (bench-clock time, channel positions, volts)."""

    time_s: float
    positions: np.ndarray
    volts: np.ndarray


Role = Literal["heaters", "modulators"]


class SimVoltageSource:
    """The heater driver or the modulator driver of a simulated chip (MRR bank: ring ``(r, c)`` on ``r·cols + c``).

    Every write costs one bus latency on the clock and is kept in :attr:`history` (the latest
    :data:`HISTORY_LIMIT` at most), so tests can prove what the guard let through. With ``state_path``
    the outputs survive the process, as a real instrument keeps driving its outputs after the software
    that set them has exited. The file is
    rewritten at most every :data:`STATE_SAVE_INTERVAL_S` of wall time during fast sequences (training
    programs thousands of tiles), and always on ``outputs_off`` and ``close``; only a process killed
    outright can leave it that much behind.
    """

    def __init__(self, chip: SimulatedChip, role: Role, name: str = "", state_path: Path | None = None) -> None:
        if role not in ("heaters", "modulators"):
            raise ValueError(f"role must be 'heaters' or 'modulators', not {role!r}")
        self.chip = chip
        self.role = role
        self.name = name or role
        self.state_path = state_path
        self.history: list[VoltageWrite] = []
        self._saved_at = -math.inf
        self._unsaved = False
        self._timer: threading.Timer | None = None
        self._save_lock = threading.Lock()
        count = chip.channel_count(role)
        self._count = count
        if state_path is not None and state_path.exists():
            self._restore(state_path)

    @property
    def n_channels(self) -> int:
        return self._count

    def identity(self) -> str:
        kind = "heater driver" if self.role == "heaters" else "modulator driver"
        return f"labsat simulated {kind}, {self._count} channels ({self.chip.label})"

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        volts = np.asarray(volts, dtype=np.float64).reshape(-1)
        if positions.shape != volts.shape:
            raise InstrumentError(f"{self.name}: {positions.size} channels but {volts.size} values")
        if positions.size and (positions.min() < 0 or positions.max() >= self._count):
            raise InstrumentError(f"{self.name}: channel positions must lie in 0..{self._count - 1}")
        self.chip.clock.sleep(self.chip.config.bus_latency_s)
        self._apply(positions, volts)
        self.history.append(VoltageWrite(self.chip.clock.now(), positions.copy(), volts.copy()))
        if len(self.history) > HISTORY_LIMIT:
            del self.history[: HISTORY_LIMIT // 2]
        self._unsaved = True
        self._schedule_save()

    def read_voltages(self) -> np.ndarray:
        """Present outputs (the heater DAC's quantised values); the instrument's cached state, no bus time."""
        source = self.chip.heater_volts if self.role == "heaters" else self.chip.modulator_volts
        return source.reshape(-1).cpu().numpy().astype(np.float64)

    def outputs_off(self) -> None:
        """All channels to 0 V (the simulated instrument has no separate off state); recorded as a write."""
        self.write_voltages(np.arange(self._count), np.zeros(self._count))
        self._save()

    def close(self) -> None:
        """Persist the last outputs (the bench closes its instruments after its safe state)."""
        if self._unsaved:
            self._save()

    def _schedule_save(self) -> None:
        """Save now if the last save is old enough, else once the interval has passed (a daemon timer)."""
        if self.state_path is None:
            return
        wait = self._saved_at + STATE_SAVE_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._save()
        elif self._timer is None or not self._timer.is_alive():
            self._timer = threading.Timer(wait, self._save_if_unsaved)
            self._timer.daemon = True
            self._timer.start()

    def _save_if_unsaved(self) -> None:
        if self._unsaved:
            self._save()

    def _apply(self, positions: np.ndarray, volts: np.ndarray, *, settled: bool = False) -> None:
        index = torch.as_tensor(positions)
        values = torch.as_tensor(volts)
        if self.role == "heaters":
            self.chip.set_heaters(index, values, settled=settled)
        else:
            self.chip.set_modulators(index, values)

    def _save(self) -> None:
        if self.state_path is None:
            return
        with self._save_lock:
            self._saved_at, self._unsaved = time.monotonic(), False
            self._write_state(self.state_path)

    def _write_state(self, path: Path) -> None:
        """Atomic write: a crash mid-save must leave the previous state, not half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"role": self.role, "n_channels": self._count, "volts": self.read_voltages().tolist()}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(state, file)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _restore(self, path: Path) -> None:
        """Outputs left by an earlier process; the heaters have been holding them, so they are settled."""
        try:
            state = json.loads(path.read_text())
            volts = np.asarray(state["volts"], dtype=np.float64)
            role, count = state["role"], int(state["n_channels"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InstrumentError(f"{self.name}: cannot read the simulated instrument state {path}: {exc}") from None
        if role != self.role or count != self._count or volts.shape != (count,):
            raise InstrumentError(
                f"{self.name}: state file {path} belongs to a {count}-channel {role} source, not this "
                f"{self._count}-channel {self.role} source; delete it to start from 0 V"
            )
        self._apply(np.arange(count), volts, settled=True)


class SimDetector:
    """The chip's photodetector array (MRR: one balanced pair per row), in volts at the ADC."""

    def __init__(self, chip: DetectedChip, name: str = "detectors") -> None:
        self.chip = chip
        self.name = name

    @property
    def n_channels(self) -> int:
        return self.chip.channel_count("detectors")

    @property
    def integration_time(self) -> float:
        return self.chip.config.sample_time_s

    def identity(self) -> str:
        return (
            f"labsat simulated {self.chip.detector_kind}, {self.n_channels} channels "
            f"({self.chip.config.adc_bits}-bit ADC, ±{self.chip.config.adc_full_scale_v:g} V)"
        )

    def read(self) -> np.ndarray:
        return self.chip.read_detectors().cpu().numpy().astype(np.float64)
