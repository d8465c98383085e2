"""The safety guard: the one place through which every instrument write passes.

Whoever writes (REST, CLI, training, calibration, the safe-state handler), the value first meets the
rules below, and a write that breaks any of them raises :class:`~labsat.errors.LimitViolation`
*before* a single channel is touched:

- static per-channel limits: voltage range, current |V|/R, electrical power V²/R;
- a bench-wide heater power budget (Σ V²/R over every channel with a resistance);
- an optional largest difference between neighbouring channels of one device;
- a vector write is validated whole, so it is all or nothing;
- an SLM frame has the SLM's shape and whole gray levels inside its configured range (:class:`GuardedSLM`).

The rules themselves live in :mod:`labsat.envelope` (one implementation, applied to one row or to a
whole batch), which also projects any point onto the allowed set (:meth:`GuardedVoltageSource.project`)
for planners that must produce writes the guard accepts.

The guard also holds the bench's state (:attr:`SafetyGuard.state`): ``idle``, ``busy`` (a holder such as
a job has it), ``halted`` (emergency stop, until :meth:`~SafetyGuard.release`) and ``faulted``: a failed
safe state or an output whose value is unknown latches a fault that refuses every write but the safe
state, survives :meth:`~SafetyGuard.release`, and is lifted only by :meth:`~SafetyGuard.clear_fault`
(an administrator's action).

Accepted moves larger than a channel's ``max_step`` are split into ramp steps with ``step_delay``
between them. Every rule describes a convex set (boxes, balls, slabs), so when the start and the
target are inside, every point of the straight ramp between them is inside too; a ramp that starts
outside (hardware found in an unknown state) only moves closer to the allowed target.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from labsat.benchfile import ChannelLimits, FrameLimits, LightLimits
from labsat.clock import Clock
from labsat.devices import SLM, LightSource, ReportsLostOutputs, VoltageSource
from labsat.envelope import Breach, Budget, ChannelRules
from labsat.errors import BenchFaulted, Halted, InstrumentError, LimitViolation, RefusedRequest, UnknownChannel
from labsat.light import GuardedLightSource
from labsat.ramp import ramp_points

log = logging.getLogger(__name__)

BenchState = Literal["idle", "busy", "halted", "faulted"]


class GuardedVoltageSource:
    """A voltage source as callers see it: named channels, validated and ramped writes."""

    def __init__(
        self,
        guard: SafetyGuard,
        name: str,
        device: VoltageSource,
        channel_names: Sequence[str],
        limits: Sequence[ChannelLimits],
        neighbour_max_diff: float | None = None,
    ) -> None:
        if len(channel_names) != len(limits) or len(channel_names) != device.n_channels:
            raise ValueError(f"{name}: channel names, limits and device channels differ in number")
        self.name = name
        self.channel_names = tuple(channel_names)
        self.limits = tuple(limits)
        self.neighbour_max_diff = neighbour_max_diff
        self._guard = guard
        self._device = device
        self._index = {channel: i for i, channel in enumerate(self.channel_names)}
        self.rules = ChannelRules.from_limits(self.channel_names, limits, neighbour_max_diff)
        self._low, self._high = self.rules.low, self.rules.high
        self._max_step = np.array([lim.max_step or math.inf for lim in limits])
        self._step_delay = max(lim.step_delay for lim in limits)
        self.safe_values = np.array([lim.safe for lim in limits])
        self._values = np.asarray(device.read_voltages(), dtype=float).copy()
        self._reports = device if isinstance(device, ReportsLostOutputs) else None
        self._safe = False  # safe state written (or being written) and nothing else since
        self._restoring = False
        self._losses_seen = 0

    # -- what callers use -------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    def identity(self) -> str:
        return self._device.identity()

    def common_range(self) -> tuple[float, float]:
        """The voltage range every channel allows (the tightest over channels): a safe box for controls."""
        return float(self._low.max()), float(self._high.min())

    @property
    def max_step(self) -> np.ndarray:
        """Largest move per channel in one write (``inf``: unbounded); a copy, for schedulers that keep ramps short."""
        return self._max_step.copy()

    def values(self) -> np.ndarray:
        """Last values this guard wrote (or read back at start-up)."""
        return self._values.copy()

    def read_back(self) -> np.ndarray:
        """Ask the instrument what it outputs now."""
        with self._guard.lock:
            values = np.asarray(self._device.read_voltages(), dtype=float)
            if self._after_reconnect():
                values = np.asarray(self._device.read_voltages(), dtype=float)
            return values

    def position(self, channel: str) -> int:
        """Channel position of a channel name; unknown names raise :class:`UnknownChannel`."""
        try:
            return self._index[channel]
        except KeyError:
            raise UnknownChannel(
                f"{self.name} has no channel {channel!r} (channels {self.channel_names[0]}..{self.channel_names[-1]})"
            ) from None

    def set(self, values: Mapping[str, float]) -> None:
        """Set channels by name, ramping where needed; all or nothing."""
        self.set_vector(self.with_changes(values))

    def with_changes(self, values: Mapping[str, float]) -> np.ndarray:
        """The present outputs with ``values`` (by channel name) substituted: a full target vector."""
        target = self.present()
        unknown = np.isnan(target)
        for channel, value in values.items():
            position = self.position(channel)
            target[position] = float(value)
            unknown[position] = False
        self._refuse_unknown(unknown)
        return target

    def set_vector(self, volts: np.ndarray | torch.Tensor | Sequence[float]) -> None:
        """Set every channel to ``volts`` (length ``n_channels``), ramping where needed; all or nothing."""
        target = _as_vector(volts, self.n_channels, self.name)
        with self._guard.lock:
            self._guard.validate(self, target)
            self._safe = False
            self._ramp_to(target)

    def check_batch(self, volts: torch.Tensor | np.ndarray) -> None:
        """Validate a batch of per-sample settings ``(B, n_channels)`` that a streamer will play.

        Each row is checked against every rule :meth:`set_sample` would apply to it alone (box, current,
        power, neighbour rule, bench budget with the other sources at their present power), all rows at
        once; the first bad row is refused, naming its channel.
        """
        self._guard.refuse_if_halted()
        rows = _as_rows(volts, self.n_channels, self.name)
        self._guard.validate_rows(self, rows)

    def allows(self, volts: np.ndarray | torch.Tensor | Sequence[Sequence[float]]) -> np.ndarray:
        """Per row of ``(B, n_channels)``: would :meth:`set_vector` accept it now (every rule, the others at their
        present power)? For planners that must stay inside the allowed set rather than be refused mid-way."""
        return self.rules.allowed(_as_rows(volts, self.n_channels, self.name), self._guard.budget_for(self))

    def project(
        self,
        volts: np.ndarray | torch.Tensor | Sequence[float],
        *,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> np.ndarray | torch.Tensor:
        """The nearest point to ``volts`` that :meth:`set_vector` accepts (see :mod:`labsat.envelope`).

        One vector of ``n_channels``; a tensor comes back as a tensor of its own dtype and device, already
        rounded so that its float64 value passes; ``lower``/``upper`` narrow the box (equal: a channel held
        at that value).
        """
        rows = self.project_batch(_rows_of(volts), lower=lower, upper=upper)
        return rows[0]

    def project_batch(
        self,
        volts: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
        *,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> np.ndarray | torch.Tensor:
        """:meth:`project` of every row of ``(B, n_channels)``; each row alone passes :meth:`set_vector`."""
        tensor = volts if isinstance(volts, torch.Tensor) else None
        dtype = np.float64 if tensor is None else torch.empty((), dtype=tensor.dtype).numpy().dtype
        rows = _as_rows(volts, self.n_channels, self.name)
        projected = self.rules.project(
            rows, self.safe_values, self._guard.budget_for(self), lower=lower, upper=upper, dtype=dtype
        )
        if tensor is None:
            return projected
        return torch.from_numpy(projected).to(tensor.device)

    def set_sample(self, volts: torch.Tensor) -> None:
        """One sample of a checked batch on the device-level path (no streamer): :meth:`set_vector`."""
        self.set_vector(volts)

    def safe_state(self) -> None:
        """Ramp to the safe values, then switch the outputs off."""
        with self._guard.lock:
            self._safe = True  # outputs lost on the way are not restored
            self._ramp_to(self.safe_values.copy(), from_unknown=True)
            self._device.outputs_off()
            self._values = self._read_or_unknown()
            self._after_reconnect()

    # -- rules (see labsat.envelope) ----------------------------------------------------------------

    def power_mw(self, volts: np.ndarray) -> np.ndarray:
        """Electrical power per channel (0 where no resistance is configured)."""
        return self.rules.power_mw(volts)

    def refuse(self, breach: Breach, *, batch: bool = False) -> None:
        """Raise the :class:`LimitViolation` that names ``breach`` (its row too, for a batch)."""
        where = f" (row {breach.row} of the batch)" if batch else ""
        raise LimitViolation(self.name, self.channel_names[breach.channel], breach.value, breach.limit + where)

    # -- writing ------------------------------------------------------------------------------------

    def _ramp_to(self, target: np.ndarray, *, from_unknown: bool = False) -> None:
        """Move to ``target`` in steps of at most ``max_step``.

        A channel whose present output is unknown (a failed write that could not be read back) cannot
        be ramped; only the safe state (``from_unknown``) may then write it, in one step. A step that a
        reconnect stopped because outputs were lost ends this plan, which started from outputs that are
        gone: the move is planned once more from where they are now (restored or not, see
        :meth:`_after_reconnect`).
        """
        losses = self._losses_seen
        try:
            self._ramp_steps(target, from_unknown)
        except InstrumentError:
            if self._losses_seen == losses:
                raise
            self._ramp_steps(target, from_unknown)

    def _ramp_steps(self, target: np.ndarray, from_unknown: bool) -> None:
        start = self.present()
        unknown = np.isnan(start)
        if unknown.any():
            if not from_unknown:
                self._refuse_unknown(unknown)
            start = np.where(unknown, target, start)
            self._write_changed(target, only=np.flatnonzero(unknown))
        points = ramp_points(start, target, self._max_step)
        for k, point in enumerate(points, start=1):
            if not from_unknown:  # the safe state itself must never be refused
                self._guard.refuse_if_halted()
            self._write_changed(point)
            if k < len(points):
                self._guard.clock.sleep(self._step_delay)

    def _write_changed(self, point: np.ndarray, only: np.ndarray | None = None) -> None:
        changed = np.flatnonzero(point != self._values) if only is None else only
        if changed.size == 0:
            return
        log.debug("%s: write %s", self.name, {self.channel_names[i]: float(point[i]) for i in changed})
        try:
            self._device.write_voltages(changed, point[changed])
        except Exception:
            # The instrument may have taken part of the write: trust only what it reports now.
            self._values = self._read_or_unknown()
            self._after_reconnect()
            raise
        self._values[changed] = point[changed]

    def _after_reconnect(self) -> bool:
        """The restore hook: outputs a reconnect found lost come back through this guard, or not at all.

        The driver wrote none of them back (it reports them, :class:`~labsat.devices.ReportsLostOutputs`).
        They are read back, so the guard's picture is the instrument's; then, unless the bench is halted or
        faulted, or this source is in (or on its way to) its safe state, they are moved to their lost set
        points like any write: validated whole (limits, budget, neighbour rule), ramped in ``max_step``
        steps on the bench clock, stopped by a halt. Channels that held get no write. A restore the rules refuse
        leaves the outputs where they are. Returns whether a report was handled.
        """
        lost = self._reports.take_lost_outputs() if self._reports is not None and not self._restoring else None
        if lost is None:
            return False
        with self._guard.lock:
            self._losses_seen += 1
            self._values = self._read_or_unknown()
            names = ", ".join(self.channel_names[p] for p in lost.positions)
            fault, halted = self._guard.faulted, self._guard.halted
            if fault is not None or halted is not None or self._safe:
                why = (
                    f"the bench is faulted ({fault})"
                    if fault is not None
                    else f"the bench is halted ({halted})"
                    if halted is not None
                    else "the outputs are in their safe state"
                )
                log.warning("%s: %s %s; not restored: %s", self.name, names, lost.detail, why)
                return True
            target = self._values.copy()
            known = np.isfinite(lost.set_points)
            target[lost.positions[known]] = lost.set_points[known]
            self._restoring = True
            try:
                self._guard.validate(self, target)
                self._ramp_to(target)
            except RefusedRequest as exc:  # a rule or a halt: the outputs stay where the guard now knows them
                log.error("%s: %s %s; not restored: %s", self.name, names, lost.detail, exc)
                return True
            finally:
                self._restoring = False
            log.warning("%s: %s %s; restored through the guard", self.name, names, lost.detail)
            return True

    def _refuse_unknown(self, unknown: np.ndarray) -> None:
        if unknown.any():
            names = ", ".join(self.channel_names[i] for i in np.flatnonzero(unknown))
            raise InstrumentError(
                f"{self.name}: present output of {names} is unknown after a failed write; "
                "nothing was written (go to the safe state first)"
            )

    def present(self) -> np.ndarray:
        """Present outputs: the cache, re-read from the instrument where a failed write left it unknown."""
        if np.isnan(self._values).any():
            self._values = self._read_or_unknown()
            self._after_reconnect()
        return self._values.copy()

    def _read_or_unknown(self) -> np.ndarray:
        try:
            return np.asarray(self._device.read_voltages(), dtype=float).copy()
        except Exception as exc:
            log.error("%s: cannot read the outputs back (%s); marking them unknown", self.name, exc)
            self._guard.fault(f"the outputs of {self.name} are in an unknown state ({exc})")
            return np.full(self.n_channels, np.nan)

    def budget_power_mw(self) -> np.ndarray:
        """Power per channel for the bench budget; an unknown output counts at its largest allowed value."""
        worst = np.maximum(np.abs(self._low), np.abs(self._high))
        return self.power_mw(np.where(np.isnan(self._values), worst, self._values))


class GuardedSLM:
    """An SLM as callers see it: frames checked before they reach the glass, then waited on until settled.

    A frame must have the SLM's shape and hold whole gray levels inside the bench file's ``frame_limits``
    (any integer or float dtype; NaN, fractions and out-of-range levels are refused with the first bad
    pixel named). Showing the frame already on the SLM is free; a new frame costs the SLM's settle time on
    the bench clock, so whatever is measured next sees the settled liquid crystal.
    """

    def __init__(self, guard: SafetyGuard, name: str, device: SLM, limits: FrameLimits) -> None:
        self.name = name
        self.limits = limits
        self.shape = tuple(device.shape)
        self.safe_frame = np.full(self.shape, limits.safe_gray, dtype=np.uint8)
        self._guard = guard
        self._device = device
        self._frame: np.ndarray | None = None  # unknown until this guard shows one

    @property
    def settle_time(self) -> float:
        return self._device.settle_time

    def identity(self) -> str:
        return self._device.identity()

    def frame(self) -> np.ndarray | None:
        """The frame this guard last showed (None: not yet known)."""
        return None if self._frame is None else self._frame.copy()

    def show(self, gray: np.ndarray | torch.Tensor) -> None:
        """Show an ``(H, W)`` frame of gray levels and wait for it to settle; refused whole or shown whole."""
        frame = self._checked(gray, batch=False)
        with self._guard.lock:
            self._guard.refuse_if_halted()
            self._display(frame)

    def set_sample(self, gray: torch.Tensor) -> None:
        """One input frame of a checked batch on the device-level path (no streamer): :meth:`show`."""
        self.show(gray)

    def check_batch(self, frames: torch.Tensor) -> None:
        """Validate ``(B, H, W)`` frames a streamer will show back to back (the input images of a batch)."""
        self._guard.refuse_if_halted()
        self._checked(frames, batch=True)

    def safe_state(self) -> None:
        """Show the safe frame (also while halted)."""
        with self._guard.lock:
            self._display(self.safe_frame)

    def _display(self, frame: np.ndarray) -> None:
        if self._frame is not None and np.array_equal(frame, self._frame):
            return
        self._frame = None  # a failed show leaves the SLM's content unknown
        self._device.show_frame(frame)
        self._frame = frame
        self._guard.clock.sleep(self._device.settle_time)

    def _checked(self, gray: np.ndarray | torch.Tensor, *, batch: bool) -> np.ndarray:
        """``gray`` as uint8 after every rule; the first broken rule raises, naming the pixel."""
        if isinstance(gray, torch.Tensor):
            gray = gray.detach().cpu().numpy()
        frames = np.asarray(gray)
        expected = ("B", *self.shape) if batch else self.shape
        if frames.ndim != len(expected) or frames.shape[-2:] != self.shape:
            raise RefusedRequest(
                f"{self.name}: frame shape {frames.shape} differs from the SLM's {expected}; nothing was shown"
            )
        if not (np.issubdtype(frames.dtype, np.integer) or np.issubdtype(frames.dtype, np.floating)):
            raise RefusedRequest(f"{self.name}: frames must hold gray levels, got dtype {frames.dtype}")
        low, high = self.limits.gray
        rules = (
            (~np.isfinite(frames) if frames.dtype.kind == "f" else None, "not a finite number"),
            (frames != np.round(frames) if frames.dtype.kind == "f" else None, "not a whole gray level"),
            (frames < low, f"below the lowest gray level {low}"),
            (frames > high, f"above the highest gray level {high}"),
        )
        for broken, limit in rules:
            if broken is not None and broken.any():
                where = tuple(int(i) for i in np.argwhere(broken)[0])
                raise LimitViolation(self.name, f"pixel {where}", float(frames[where]), limit)
        return frames.astype(np.uint8)


class SafetyGuard:
    """One guard per bench: owns the rules that span devices and the lock that orders all writes.

    The lock is re-entrant so that the safe-state handler, which a signal can run in the middle of a
    ramp on the same thread, can still take it and move the outputs from wherever they got to.

    :meth:`halt` is the emergency stop. Its flag is read without the lock, before every ramp step and
    every streamed batch, so a write in progress on another thread stops at its next step (and the
    safe state, which waits for the lock, follows within one guard step) and nothing but the safe
    state writes again until :meth:`release`.
    """

    def __init__(self, clock: Clock, heater_power_budget_mw: float | None = None) -> None:
        self.clock = clock
        self.heater_power_budget_mw = heater_power_budget_mw
        self.lock = threading.RLock()
        self.sources: dict[str, GuardedVoltageSource] = {}
        self.slms: dict[str, GuardedSLM] = {}
        self.lights: dict[str, GuardedLightSource] = {}
        self._halted: str | None = None
        self._fault: str | None = None
        self._holder: str | None = None

    @property
    def halted(self) -> str | None:
        """Why the bench is halted, or None when writes are allowed."""
        return self._halted

    @property
    def faulted(self) -> str | None:
        """The latched fault (what went wrong), or None."""
        return self._fault

    @property
    def holder(self) -> str | None:
        """Who holds the bench (a job id), or None."""
        return self._holder

    @property
    def state(self) -> BenchState:
        """``faulted`` over ``halted`` over ``busy`` over ``idle``: the most severe condition wins."""
        if self._fault is not None:
            return "faulted"
        if self._halted is not None:
            return "halted"
        return "busy" if self._holder is not None else "idle"

    def occupy(self, holder: str) -> None:
        """Mark the bench ``busy`` for ``holder`` (a job); a faulted bench refuses, naming the fault."""
        self.refuse_if_faulted()
        self._holder = holder

    def vacate(self) -> None:
        """The holder has left the bench."""
        self._holder = None

    def fault(self, reason: str) -> None:
        """Latch ``faulted``: from now on only the safe state writes, until :meth:`clear_fault`."""
        if self._fault is None:
            log.error("bench fault latched: %s", reason)
            self._fault = reason

    def clear_fault(self) -> str | None:
        """The administrator's action after inspecting the bench: lift the fault; returns what it was."""
        fault, self._fault = self._fault, None
        if fault is not None:
            log.warning("bench fault cleared: %s", fault)
        return fault

    def refuse_if_faulted(self) -> None:
        if self._fault is not None:
            raise BenchFaulted(
                f"the bench is faulted ({self._fault}); writes are refused until an administrator clears the "
                "fault (labsat clear-fault)"
            )

    def halt(self, reason: str) -> None:
        """Emergency stop: refuse every write but the safe state from now on, then go to the safe state."""
        self._halted = reason
        self.safe_state()

    def release(self) -> None:
        """Allow writes again after :meth:`halt` (once whoever was writing has stopped); a fault stays."""
        self._halted = None

    def refuse_if_halted(self) -> None:
        """Refuse a write while faulted or halted."""
        self.refuse_if_faulted()
        if self._halted is not None:
            raise Halted(f"the bench is halted ({self._halted}); writes are refused until it is released")

    def add_voltage_source(
        self,
        name: str,
        device: VoltageSource,
        channel_names: Sequence[str],
        limits: Sequence[ChannelLimits],
        neighbour_max_diff: float | None = None,
    ) -> GuardedVoltageSource:
        """Wrap ``device``; from now on it is written only through the returned object."""
        source = GuardedVoltageSource(self, name, device, channel_names, limits, neighbour_max_diff)
        self.sources[name] = source
        return source

    def add_slm(self, name: str, device: SLM, limits: FrameLimits) -> GuardedSLM:
        """Wrap an SLM; from now on it is shown frames only through the returned object."""
        slm = GuardedSLM(self, name, device, limits)
        self.slms[name] = slm
        return slm

    def add_light_source(self, name: str, device: LightSource, limits: LightLimits) -> GuardedLightSource:
        """Wrap a light source; from now on it is switched and tuned only through the returned object."""
        light = GuardedLightSource(self, name, device, limits)
        self.lights[name] = light
        return light

    def validate(
        self,
        source: GuardedVoltageSource,
        target: np.ndarray,
        pending: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Every rule for ``target`` on ``source``.

        The other devices count at their present values, or at ``pending[name]`` when several devices
        are about to be written together.
        """
        breach = source.rules.first_breach(target.reshape(1, -1), self.budget_for(source, pending))
        if breach is not None:
            source.refuse(breach)

    def validate_rows(self, source: GuardedVoltageSource, rows: np.ndarray) -> None:
        """Every rule for each row of ``rows`` ``(B, n)`` on ``source`` (the others at their present values)."""
        breach = source.rules.first_breach(rows, self.budget_for(source))
        if breach is not None:
            source.refuse(breach, batch=True)

    def budget_for(
        self, source: GuardedVoltageSource, pending: Mapping[str, np.ndarray] | None = None
    ) -> Budget | None:
        """The bench budget as it applies to ``source``: the other sources at ``pending`` or present power."""
        if self.heater_power_budget_mw is None:
            return None
        pending = pending or {}
        others = sum(
            float(other.power_mw(pending[name]).sum() if name in pending else other.budget_power_mw().sum())
            for name, other in self.sources.items()
            if other is not source
        )
        return Budget(self.heater_power_budget_mw, others, source.budget_power_mw())

    def safe_state(self) -> None:
        """Every light off, every source to its safe values and off, every SLM to its safe frame; keeps going
        past a failing device, then re-raises."""
        errors: list[Exception] = []
        with self.lock:
            # Lights go dark first: nothing else should be driven while light still reaches the chip.
            devices: list[GuardedVoltageSource | GuardedSLM | GuardedLightSource] = [
                *self.lights.values(),
                *self.sources.values(),
                *self.slms.values(),
            ]
            for device in devices:
                try:
                    device.safe_state()
                except Exception as exc:  # one broken instrument must not keep the others live
                    log.error("safe state of %s failed: %s", device.name, exc)
                    errors.append(exc)
        if errors:
            self.fault(f"the safe state failed: {errors[0]}")
            raise errors[0]


def _as_rows(volts: np.ndarray | torch.Tensor | Sequence[Sequence[float]], n: int, name: str) -> np.ndarray:
    if isinstance(volts, torch.Tensor):
        volts = volts.detach().to("cpu", torch.float64).numpy()
    rows = np.asarray(volts, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != n:
        raise ValueError(f"{name}: expected a (B, {n}) batch, got {tuple(rows.shape)}")
    return rows


def _rows_of(volts: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray | torch.Tensor:
    if isinstance(volts, torch.Tensor):
        return volts.reshape(1, -1)
    return np.asarray(volts, dtype=float).reshape(1, -1)


def show_program(program: Sequence[tuple[GuardedSLM, np.ndarray | torch.Tensor]]) -> None:
    """Frames for several SLMs of one bench as one program, all or nothing.

    Every frame is checked against its SLM's limits before any SLM changes, and the guard's lock is held
    throughout, so neither a refusal nor an emergency stop leaves some masks showing the new program and
    others the old one. (An instrument that fails while showing its frame can still leave the program
    half shown; its SLM's content is then unknown, as after any failed show.)
    """
    if not program:
        return
    guard = program[0][0]._guard
    names = [slm.name for slm, _ in program]
    if len(set(names)) != len(names) or any(slm._guard is not guard for slm, _ in program):
        raise RefusedRequest(f"a program shows one frame on each of one bench's SLMs, got {names}; nothing was shown")
    checked = [(slm, slm._checked(frame, batch=False)) for slm, frame in program]
    with guard.lock:
        guard.refuse_if_halted()
        for slm, frame in checked:
            slm._display(frame)


def _as_vector(volts: np.ndarray | torch.Tensor | Sequence[float], n: int, name: str) -> np.ndarray:
    if isinstance(volts, torch.Tensor):
        volts = volts.detach().to("cpu", torch.float64).numpy()
    vector = np.asarray(volts, dtype=float).reshape(-1)
    if vector.size != n:
        raise ValueError(f"{name}: expected {n} values, got {vector.size}")
    return vector
