"""A recorder below the guard: every raw instrument write of a bench, checked against the bench file's limits.

It wraps the raw devices the guard holds (``write_voltages``, ``show_frame``, the batch streamer), keeps its
own copy of every output, and checks each write with rules written here from the bench file, not with the
guard's code: a value outside a channel's range, current or power cap, a neighbour difference or a bench
budget exceeded by the outputs as they now stand, a single move larger than ``max_step``, a frame outside
its gray limits. An *attempt* (one request through some path) brackets writes, so a refused attempt that
still wrote something, or an accepted one that stopped short of its target, is a half-applied write.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from labsat.bench import Bench
from labsat.errors import LabsatError

T = TypeVar("T")

TOLERANCE = 1e-9
"""Slack on every comparison: the rules' own float64 rounding, far below any instrument's resolution."""


@dataclass
class _SourceRules:
    """One voltage source's limits, as the bench file states them."""

    low: np.ndarray
    high: np.ndarray
    conductance_ms: np.ndarray
    current_max_ma: np.ndarray
    power_max_mw: np.ndarray
    max_step: np.ndarray
    neighbour_max_diff: float | None

    @classmethod
    def of(cls, source: Any) -> _SourceRules:
        limits = source.limits

        def column(read: Callable[[Any], float | None], missing: float) -> np.ndarray:
            return np.array([missing if read(lim) is None else float(read(lim)) for lim in limits])

        resistance = column(lambda lim: lim.resistance_ohm, math.inf)
        return cls(
            low=column(lambda lim: lim.voltage[0], -math.inf),
            high=column(lambda lim: lim.voltage[1], math.inf),
            conductance_ms=np.where(np.isfinite(resistance), 1e3 / resistance, 0.0),
            current_max_ma=column(lambda lim: lim.current_max_ma, math.inf),
            power_max_mw=column(lambda lim: lim.power_max_mw, math.inf),
            max_step=column(lambda lim: lim.max_step, math.inf),
            neighbour_max_diff=source.neighbour_max_diff,
        )

    def power_mw(self, volts: np.ndarray) -> np.ndarray:
        return volts**2 * self.conductance_ms

    def broken(self, volts: np.ndarray) -> list[str]:
        """Every rule one output vector (or each row of a batch) breaks."""
        rows = np.atleast_2d(volts)
        found = []
        if not np.isfinite(rows).all():
            found.append("not finite")
        if (rows < self.low - TOLERANCE).any() or (rows > self.high + TOLERANCE).any():
            found.append("voltage range")
        if (np.abs(rows) * self.conductance_ms > self.current_max_ma + TOLERANCE).any():
            found.append("current cap")
        if (self.power_mw(rows) > self.power_max_mw + TOLERANCE).any():
            found.append("power cap")
        neighbour = math.inf if self.neighbour_max_diff is None else self.neighbour_max_diff
        if rows.shape[1] > 1 and (np.abs(np.diff(rows, axis=1)) > neighbour + TOLERANCE).any():
            found.append("neighbour rule")
        return found


@dataclass
class Attempt:
    """The raw writes one request caused."""

    path: str
    writes: int = 0
    accepted: bool = False


@dataclass
class RawWriteRecorder:
    """Every raw write of one bench, each checked; violations are kept as readable lines."""

    bench: Bench
    violations: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _outputs: dict[str, np.ndarray] = field(default_factory=dict)
    _rules: dict[str, _SourceRules] = field(default_factory=dict)
    _attempt: Attempt | None = None

    def __post_init__(self) -> None:
        for name, source in self.bench.sources.items():
            device = source._device
            self._rules[name] = _SourceRules.of(source)
            self._outputs[name] = np.asarray(device.read_voltages(), dtype=float).copy()
            device.write_voltages = self._voltage_writer(name, device.write_voltages)
        for name, slm in self.bench.slms.items():
            slm._device.show_frame = self._frame_shower(name, slm, slm._device.show_frame)
        for name, light in self.bench.lights.items():
            self._wrap_light(name, light)
        if self.bench.streamer is not None:
            self.bench.streamer.stream = self._batch_streamer(self.bench.streamer.stream)

    # -- what tests use ------------------------------------------------------------------------------

    def outputs(self, source: str) -> np.ndarray:
        """The outputs of ``source`` as the raw writes left them."""
        return self._outputs[source].copy()

    @contextmanager
    def attempt(self, path: str) -> Iterator[Attempt]:
        """Bracket one request; the caller then checks it with :meth:`refused` or :meth:`reached`."""
        self._attempt = Attempt(path)
        self.counts[f"{path} attempts"] += 1
        try:
            yield self._attempt
        finally:
            self._attempt = None

    def refused(self, attempt: Attempt, why: str) -> None:
        """A refused request must not have written anything."""
        self.counts[f"{attempt.path} refused"] += 1
        if attempt.writes:
            self.violations.append(f"{attempt.path}: refused ({why}) after {attempt.writes} raw writes")

    def run(self, path: str, action: Callable[[], T]) -> tuple[Attempt, T | None]:
        """``action`` as one attempt: labsat's refusal (checked with :meth:`refused`) gives None, else its result."""
        with self.attempt(path) as tried:
            try:
                result = action()
            except LabsatError as refusal:
                self.refused(tried, str(refusal))
                return tried, None
        self.counts[f"{path} accepted"] += 1
        tried.accepted = True
        return tried, result

    def reached(self, attempt: Attempt, targets: Mapping[str, float]) -> None:
        """An accepted request (counted here) must have left every ``"device.channel"`` it named at its target."""
        self.counts[f"{attempt.path} accepted"] += 1
        self.check_targets(attempt, targets)

    def check_targets(self, attempt: Attempt, targets: Mapping[str, float]) -> None:
        """Every ``"device.channel"`` of ``targets`` is where the raw writes left it."""
        for target, value in targets.items():
            device, _, channel = target.partition(".")
            position = self.bench.sources[device].position(channel)
            if self._outputs[device][position] != value:
                self.violations.append(
                    f"{attempt.path}: {target} left at {self._outputs[device][position]!r}, not {value!r}"
                )

    # -- the wrapped device methods ---------------------------------------------------------------------

    def _voltage_writer(self, name: str, write: Callable[[np.ndarray, np.ndarray], None]) -> Callable[..., None]:
        rules = self._rules[name]

        def recorded(positions: np.ndarray, volts: np.ndarray) -> None:
            before = self._outputs[name]
            after = before.copy()
            after[np.asarray(positions, dtype=int)] = np.asarray(volts, dtype=float)
            step = np.abs(after - before)
            if (step > rules.max_step + TOLERANCE).any():
                worst = int(np.argmax(step - rules.max_step))
                self.violations.append(f"{name}[{worst}]: one move of {step[worst]:.6g} V, over max_step")
            for rule in rules.broken(after):
                self.violations.append(f"{name}: outputs {after.tolist()} break the {rule}")
            write(positions, volts)
            self._outputs[name] = after
            self._check_budget(name)
            self.counts["raw voltage writes"] += 1
            if self._attempt is not None:
                self._attempt.writes += 1

        return recorded

    def _check_budget(self, written: str) -> None:
        budget = self.bench.spec.limits.heater_power_budget_mw
        if budget is None:
            return
        total = sum(float(rules.power_mw(self._outputs[name]).sum()) for name, rules in self._rules.items())
        if total > budget + TOLERANCE:
            self.violations.append(f"after a write to {written}: total power {total:.6g} mW over the budget")

    def _frame_shower(self, name: str, slm: Any, show: Callable[[np.ndarray], None]) -> Callable[..., None]:
        low, high = slm.limits.gray

        def recorded(gray: np.ndarray) -> None:
            frame = np.asarray(gray)
            if frame.shape != tuple(slm.shape):
                self.violations.append(f"{name}: frame of shape {frame.shape}")
            elif frame.min() < low or frame.max() > high:
                self.violations.append(f"{name}: gray levels {frame.min()}..{frame.max()} outside [{low}, {high}]")
            show(gray)
            self.counts["raw SLM frames"] += 1
            if self._attempt is not None:
                self._attempt.writes += 1

        return recorded

    def _wrap_light(self, name: str, light: Any) -> None:
        """Every raw setpoint of a light source inside its ``light_limits``, and on only with both inside."""
        device, limits = light._device, light.limits
        state = device.read_state()
        setpoints = {"power_mw": state.power_mw, "wavelength_nm": state.wavelength_nm}

        def setter(key: str, send: Callable[[float], None]) -> Callable[[float], None]:
            low, high = getattr(limits, key)

            def recorded(value: float) -> None:
                if not low <= value <= high:
                    self.violations.append(f"{name}: {key} {value!r} sent, outside [{low:g}, {high:g}]")
                send(value)
                setpoints[key] = value
                self._count_light_write()

            return recorded

        def enabled(on: bool, send: Callable[[bool], None] = device.set_enabled) -> None:
            inside = all(
                getattr(limits, key)[0] <= value <= getattr(limits, key)[1] for key, value in setpoints.items()
            )
            if on and not inside:
                self.violations.append(f"{name}: switched on at {setpoints}, outside its limits")
            send(on)
            self._count_light_write()

        device.set_power_mw = setter("power_mw", device.set_power_mw)
        device.set_wavelength_nm = setter("wavelength_nm", device.set_wavelength_nm)
        device.set_enabled = enabled

    def _count_light_write(self) -> None:
        self.counts["raw light source writes"] += 1
        if self._attempt is not None:
            self._attempt.writes += 1

    def _batch_streamer(self, stream: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
        def recorded(inputs: torch.Tensor) -> torch.Tensor:
            rows = inputs.detach().to("cpu", torch.float64).numpy()
            if rows.ndim == 2:  # modulator drives; frames are the SLM's business
                name = self._input_source(rows.shape[1])
                for rule in self._rules[name].broken(rows):
                    self.violations.append(f"streamed batch on {name} breaks the {rule}")
                self._check_streamed_budget(name, rows)
            self.counts["raw streamed rows"] += rows.shape[0]
            if self._attempt is not None:
                self._attempt.writes += 1
            return stream(inputs)

        return recorded

    def _input_source(self, width: int) -> str:
        """The source a streamed batch drives: the one the system's spec names as its modulators."""
        name = getattr(self.bench.spec.system, "modulators", None)
        assert name in self._rules and len(self._outputs[name]) == width, "streamed rows fit no input source"
        return name

    def _check_streamed_budget(self, name: str, rows: np.ndarray) -> None:
        budget = self.bench.spec.limits.heater_power_budget_mw
        if budget is None:
            return
        others = sum(
            float(rules.power_mw(self._outputs[other]).sum()) for other, rules in self._rules.items() if other != name
        )
        totals = self._rules[name].power_mw(rows).sum(axis=1) + others
        if (totals > budget + TOLERANCE).any():
            self.violations.append(f"streamed batch on {name}: a row takes the total to {totals.max():.6g} mW")
