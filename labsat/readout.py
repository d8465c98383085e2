"""Reading a bench through its devices: what it costs, a batch measured, and volts as logical units.

Every System (and the simulated networks that stand in for one) counts its device queries in
:class:`QueryStats`, plays a batch through its input devices with :func:`measure_batch`, and maps
detector and modulator volts to logical values with a :class:`Readout`. They sit below the Systems,
beside the device protocols, so training, calibration and the simulators share them without depending
on any one physical system.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from labsat.clock import Clock
from labsat.devices import BatchStreamer, Detector


@dataclass
class QueryStats:
    """What the device has been asked, and how long it would take on the bench."""

    forwards: int = 0
    programs: int = 0
    samples: int = 0
    bench_time_s: float = 0.0

    def copy(self) -> QueryStats:
        return QueryStats(self.forwards, self.programs, self.samples, self.bench_time_s)

    def since(self, earlier: QueryStats) -> QueryStats:
        """Counts accumulated after ``earlier`` was taken."""
        return QueryStats(
            self.forwards - earlier.forwards,
            self.programs - earlier.programs,
            self.samples - earlier.samples,
            self.bench_time_s - earlier.bench_time_s,
        )


class NominalReadout(Protocol):
    """What a bench file says of its readout before any calibration (a bank's or a mesh's ``system:``)."""

    @property
    def readout_volts_per_unit(self) -> float: ...

    @property
    def readout_dark_volts(self) -> float: ...

    @property
    def modulator_v_pi(self) -> float: ...


@dataclass
class Readout:
    """How detector volts and modulator volts map to logical values.

    Starts from the bench file's nominal values; a calibration replaces them with fitted per-row and
    per-channel values.
    """

    volts_per_unit: torch.Tensor  # (rows,)
    dark_volts: torch.Tensor  # (rows,)
    modulator_v_pi: torch.Tensor  # (cols,)

    @classmethod
    def nominal(cls, spec: NominalReadout, outputs: int, inputs: int, device: torch.device) -> Readout:
        """The bench file's nominal readout, the same for every detector and every modulator."""
        return cls(
            volts_per_unit=torch.full((outputs,), spec.readout_volts_per_unit, device=device),
            dark_volts=torch.full((outputs,), spec.readout_dark_volts, device=device),
            modulator_v_pi=torch.full((inputs,), spec.modulator_v_pi, device=device),
        )

    def modulator_volts(self, x: torch.Tensor, allowed: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Drive that makes the modulator pass fraction ``x`` ∈ [0, 1] of its full power (sin² curve).

        A drive the modulators may not take (a calibrated ``V_π`` above the range's top, a neighbour or power
        rule) is moved by ``allowed`` (the guard's projection of a batch) to the nearest one they may: the light
        saturates there, and the guard is never asked for more.
        """
        volts = (2.0 * self.modulator_v_pi / math.pi) * torch.asin(x.clamp(0.0, 1.0).sqrt())
        return allowed(volts)

    def to_units(self, detector_volts: torch.Tensor) -> torch.Tensor:
        return (detector_volts - self.dark_volts) / self.volts_per_unit


class BatchInput(Protocol):
    """A guarded input device a batch is played through: modulators (a vector per sample) or an input SLM (a frame)."""

    def check_batch(self, batch: torch.Tensor) -> None:
        """Validate the whole batch ``(B, ...)`` before any of it is played."""
        ...

    def set_sample(self, sample: torch.Tensor) -> None:
        """Hold one sample on the device-level path."""
        ...


def measure_batch(
    inputs: BatchInput,
    detectors: Detector,
    streamer: BatchStreamer | None,
    batch: torch.Tensor,
    clock: Clock,
    stats: QueryStats,
) -> torch.Tensor:
    """Detector readings ``(B, n_detectors)`` (float32) for input settings ``(B, ...)`` (modulator drives, frames).

    The batch is validated whole by the guard, then streamed where the bench has a streamer, else set
    and read sample by sample through the instruments (the device-level path).
    """
    started = clock.now()
    inputs.check_batch(batch)
    if streamer is not None:
        readings = streamer.stream(batch)
    else:
        rows = []
        for sample in batch:
            inputs.set_sample(sample)
            rows.append(torch.as_tensor(detectors.read(), dtype=torch.float32))
        readings = torch.stack(rows)
    stats.samples += batch.shape[0]
    stats.bench_time_s += clock.now() - started
    return readings.to(torch.float32)


def clamp_inside(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``values`` clamped into ``[low, high]`` in their own dtype, never past a limit once compared in float64.

    A limit such as 2.2 V has no exact float32 form and rounds *up* (2.2000000477); a value clamped to it
    would then be refused by the guard, which compares in float64. Such a bound is stepped one ulp inward.
    """
    lo = torch.tensor(low, dtype=values.dtype, device=values.device)
    hi = torch.tensor(high, dtype=values.dtype, device=values.device)
    if float(lo) < low:
        lo = torch.nextafter(lo, hi)
    if float(hi) > high:
        hi = torch.nextafter(hi, lo)
    return values.clamp(lo, hi)
