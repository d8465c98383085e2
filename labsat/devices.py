"""Device protocols: what labsat needs from an instrument, real or simulated.

Drivers (``labsat.drivers``) and simulators (``labsat.simulators``) implement these small protocols;
nothing above this layer knows which one it talks to. Raw devices are never handed to callers: the
bench wraps every writable device in the safety guard (:mod:`labsat.guard`), which is the only code
that calls the ``write_*`` methods below.

Vectors cross this boundary as 1-D float64 numpy arrays in physical units (volts, watts, volts at the
ADC), indexed by the device's channel position ``0..n_channels-1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class VoltageSource(Protocol):
    """N output channels (heater drivers, DACs, SMUs, modulator drivers)."""

    @property
    def n_channels(self) -> int: ...

    def identity(self) -> str:
        """Instrument identity (``*IDN?`` or equivalent), shown by ``labsat devices``."""
        ...

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        """Write ``volts[i]`` to channel ``positions[i]``, in one bus command where the instrument allows.

        Called only by the guard, after it validated the whole vector.
        """
        ...

    def read_voltages(self) -> np.ndarray:
        """Present output of every channel (read back, or the cached last write for write-only hardware)."""
        ...

    def outputs_off(self) -> None:
        """Switch outputs off (or to 0 V where the instrument has no off state)."""
        ...


@dataclass(frozen=True)
class LostOutputs:
    """Outputs a reconnect found no longer holding what was set (a power cycle, a change by hand).

    ``set_points`` are the values last acknowledged at ``positions`` (NaN where none was), what a restore
    would bring back; whether it does is the guard's decision, never the driver's.
    """

    positions: np.ndarray
    set_points: np.ndarray
    detail: str


@runtime_checkable
class ReportsLostOutputs(Protocol):
    """A voltage source that notices when its outputs were lost (it reconnects to its instrument)."""

    def take_lost_outputs(self) -> LostOutputs | None:
        """The outputs lost since the last call (None: none), once; the driver has written none of them back."""
        ...


@runtime_checkable
class Detector(Protocol):
    """A vector of power or photocurrent readings (PD array, power-meter channels, camera ROIs)."""

    @property
    def n_channels(self) -> int: ...

    def identity(self) -> str: ...

    def read(self) -> np.ndarray:
        """One reading per channel, in the detector's output unit (volts at the ADC, or watts)."""
        ...

    @property
    def integration_time(self) -> float:
        """Seconds one reading integrates over."""
        ...


@runtime_checkable
class SLM(Protocol):
    """A spatial light modulator that shows 8-bit gray-level frames."""

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def settle_time(self) -> float:
        """Seconds after a new frame before the liquid crystal has settled."""
        ...

    def identity(self) -> str: ...

    def show_frame(self, gray: np.ndarray) -> None:
        """Show an (H, W) uint8 frame. Called only by the guard."""
        ...


class LightState(NamedTuple):
    """What a light source emits: whether its output is on, its power setpoint (mW) and wavelength (nm)."""

    enabled: bool
    power_mw: float
    wavelength_nm: float


@runtime_checkable
class LightSource(Protocol):
    """A laser: on/off, output power and wavelength. The ``set_*`` methods are called only by the guard."""

    def identity(self) -> str: ...

    def set_enabled(self, on: bool) -> None:
        """Switch the output on or off (off is the safe state)."""
        ...

    def set_power_mw(self, power_mw: float) -> None:
        """Set the output power, after the guard checked it against the power limits."""
        ...

    def set_wavelength_nm(self, wavelength_nm: float) -> None:
        """Set the wavelength, after the guard checked it against the wavelength limits."""
        ...

    def read_state(self) -> LightState:
        """What the instrument reports now (output state, power setpoint, wavelength)."""
        ...


@runtime_checkable
class BatchStreamer(Protocol):
    """Streams a batch of input settings through the optics and returns detector readings.

    Real benches do this with a waveform generator and a triggered DAQ (or a DMD pattern sequence and a
    triggered camera); the simulator does it in one vectorised call. A bench without a streamer is driven
    sample by sample through its input device and :class:`Detector` (the device-level path).
    """

    def stream(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, ...)`` inputs already validated by the guard (modulator volts ``(B, n_inputs)``, input frames
        ``(B, H, W)``) -> ``(B, n_outputs)`` readings."""
        ...
