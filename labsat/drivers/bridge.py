"""Instruments of another framework's catalogue (PyMeasure, QCoDeS) as labsat devices, behind the guard.

A lab often has a working PyMeasure or QCoDeS driver for an instrument labsat has none for. A bridge
device takes that driver's instrument object and a map, from the bench file, of which of its properties
(PyMeasure) or parameters (QCoDeS) set a channel's volts or read a channel's value. The bench wraps the
device in the guard like any other, so every write is checked, ramped and budgeted first, and a refused
write never reaches the instrument.

What differs between frameworks is only how a name is set, read or called: an :class:`Accessor`. The
device classes, the options and their errors are shared here.

Bench options of ``driver: pymeasure`` and ``driver: qcodes`` (see :class:`BridgeOptions`)::

    options:
      instrument: pymeasure.instruments.keithley.Keithley2400
      kwargs: {}                       # further constructor arguments
      setup:                           # at connect, in order
        - {set: source_mode, value: voltage}
        - {set: compliance_current, value: 0.01}
      channels:                        # one entry per bench channel, in channel order
        - {set: source_voltage, read: source_voltage}
      enable: [{call: enable_source}]  # before the first write after outputs_off
      disable: [{call: disable_source}]
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labsat.benchfile import DeviceSpec
from labsat.errors import BenchFileError, InstrumentError
from labsat.registry import BenchContext

R = TypeVar("R")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Action(_Options):
    """One step of a setup, enable or disable sequence: call a method, or set a property to a value."""

    call: str | None = Field(None, description="Method to call without arguments (dotted for a channel's).")
    set: str | None = Field(None, description="Property or parameter to set (dotted for a channel's).")
    value: Any = Field(None, description="The value ``set`` takes.")

    @model_validator(mode="after")
    def _one_of(self) -> Action:
        if (self.call is None) == (self.set is None):
            raise ValueError("an action is either {call: NAME} or {set: NAME, value: VALUE}")
        return self


class ChannelMap(_Options):
    """Which names of the instrument serve one bench channel."""

    set: str | None = Field(None, description="What sets the channel's volts (voltage sources).")
    read: str | None = Field(
        None, description="What reads it: the output's volts (default: the last write) or a detector's value."
    )


class BridgeOptions(_Options):
    """A bridge device's ``options`` in the bench file."""

    instrument: str = Field(description="Dotted path of the framework's instrument class.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Further constructor arguments.")
    setup: list[Action] = Field(default_factory=list, description="Run at connect, in order.")
    channels: list[ChannelMap] = Field(min_length=1, description="One entry per bench channel, in channel order.")
    enable: list[Action] = Field(default_factory=list, description="Run before the first write after outputs off.")
    disable: list[Action] = Field(default_factory=list, description="Run to switch the outputs off.")
    integration_time_s: float = Field(0.0, ge=0, description="Seconds one reading integrates over (detectors).")


class Accessor(Protocol):
    """How one framework's instrument is driven by name."""

    def set(self, instrument: Any, name: str, value: Any) -> None: ...

    def get(self, instrument: Any, name: str) -> Any: ...

    def call(self, instrument: Any, name: str) -> None: ...

    def identity(self, instrument: Any) -> str: ...

    def close(self, instrument: Any) -> None:
        """Let go of the instrument's connection (and, in QCoDeS, of its name)."""
        ...


def resolve(instrument: Any, name: str) -> Any:
    """``"ch_1.voltage"`` on ``instrument``: the attribute path, each step read once (a PyMeasure property is a
    query) and checked, so a typo names itself."""
    target = instrument
    for part in name.split("."):
        missing = object()
        found = missing if part.startswith("_") else getattr(target, part, missing)
        if found is missing:
            raise AttributeError(f"{type(instrument).__name__} has no {name!r} (no {part!r})")
        target = found
    return target


def instrument_class(path: str, packages: Sequence[str]) -> type:
    """The class at a dotted ``path``, which must lie in one of ``packages`` (a bench file names no other code)."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not any(module_name == p or module_name.startswith(p + ".") for p in packages):
        raise ValueError(f"{path!r} is not a class of {' or '.join(packages)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    found = getattr(module, class_name, None)
    if not isinstance(found, type):
        raise ValueError(f"{module_name!r} has no class {class_name!r}")
    return found


def bridge_options(spec: DeviceSpec, path: str, name: str) -> BridgeOptions:
    """The device's options, validated; an error names the bench file and the key."""
    try:
        options = BridgeOptions.model_validate(spec.options)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise BenchFileError(path, f"devices.{name}.options.{where}", problem["msg"]) from None
    assert spec.channels is not None  # a voltage_source or detector always has channels (DeviceSpec checks)
    if len(options.channels) != spec.channels.count:
        raise BenchFileError(
            path,
            f"devices.{name}.options.channels",
            f"maps {len(options.channels)} channels; the device has {spec.channels.count}",
        )
    needed = "set" if spec.kind == "voltage_source" else "read"
    for index, channel in enumerate(options.channels):
        if getattr(channel, needed) is None:
            raise BenchFileError(path, f"devices.{name}.options.channels.{index}.{needed}", f"a {spec.kind} needs it")
    return options


class BridgeDevice:
    """The parts both bridge devices share: the instrument, its accessor, errors that name the device."""

    def __init__(self, name: str, instrument: Any, accessor: Accessor, options: BridgeOptions) -> None:
        self.name = name
        self.instrument = instrument
        self.accessor = accessor
        self.options = options
        self._run(options.setup, "setup")

    @property
    def n_channels(self) -> int:
        return len(self.options.channels)

    def identity(self) -> str:
        return self._checked(f"identity of {type(self.instrument).__name__}", self.accessor.identity, self.instrument)

    def close(self) -> None:
        self.accessor.close(self.instrument)

    def _run(self, actions: Sequence[Action], what: str) -> None:
        for action in actions:
            if action.call is not None:
                self._checked(f"{what}: {action.call}()", self.accessor.call, self.instrument, action.call)
            else:
                assert action.set is not None
                step = f"{what}: {action.set} = {action.value!r}"
                self._checked(step, self.accessor.set, self.instrument, action.set, action.value)

    def _checked(self, what: str, operation: Callable[..., R], *args: Any) -> R:
        """``operation(*args)``; whatever the framework raises becomes an error naming device and step."""
        try:
            return operation(*args)
        except Exception as exc:
            raise InstrumentError(f"{self.name} ({type(self.instrument).__name__}): {what} failed: {exc}") from exc

    def _number(self, name: str) -> float:
        value = self._checked(f"reading {name}", self.accessor.get, self.instrument, name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InstrumentError(f"{self.name}: {name} answered {value!r}, not a number") from None
        if not np.isfinite(number):
            raise InstrumentError(f"{self.name}: {name} answered {value!r}, not a finite number")
        return number


class BridgeVoltageSource(BridgeDevice):
    """A :class:`~labsat.devices.VoltageSource` over another framework's instrument."""

    def __init__(self, name: str, instrument: Any, accessor: Accessor, options: BridgeOptions) -> None:
        super().__init__(name, instrument, accessor, options)
        self._last = np.full(self.n_channels, np.nan)
        self._enabled = False

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        if not self._enabled:
            self._run(self.options.enable, "enable")
            self._enabled = True
        for position, value in zip(positions, volts, strict=True):
            target = self.options.channels[int(position)].set
            assert target is not None  # checked when the options were read
            self._checked(f"{target} = {float(value):g}", self.accessor.set, self.instrument, target, float(value))
            self._last[int(position)] = float(value)

    def read_voltages(self) -> np.ndarray:
        values = self._last.copy()
        for position, channel in enumerate(self.options.channels):
            if channel.read is not None:
                values[position] = self._number(channel.read)
        return values

    def outputs_off(self) -> None:
        self._run(self.options.disable, "disable")
        self._enabled = False


class BridgeDetector(BridgeDevice):
    """A :class:`~labsat.devices.Detector` over another framework's instrument."""

    def read(self) -> np.ndarray:
        names = [channel.read for channel in self.options.channels]
        return np.array([self._number(name) for name in names if name is not None])

    @property
    def integration_time(self) -> float:
        return self.options.integration_time_s


Construct = Callable[[type, str, DeviceSpec, BenchContext, BridgeOptions], Any]
"""How a framework makes its instrument: ``(class, device name, spec, context, options) -> instrument``."""


def build_bridge(
    name: str,
    spec: DeviceSpec,
    context: BenchContext,
    *,
    framework: Framework,
) -> BridgeVoltageSource | BridgeDetector:
    """The bridge device of a bench entry: options checked, the class found, the instrument made and mapped."""
    where = f"devices.{name}"
    if spec.kind not in ("voltage_source", "detector"):
        serves = f"driver {framework.driver!r} serves voltage_source or detector"
        raise BenchFileError(context.path, f"{where}.kind", serves)
    options = bridge_options(spec, context.path, name)
    try:
        cls = instrument_class(options.instrument, framework.packages)
    except ValueError as exc:
        missing = importlib.util.find_spec(framework.module) is None
        hint = f" (install the extra: pip install 'labsat[{framework.driver}]')" if missing else ""
        raise BenchFileError(context.path, f"{where}.options.instrument", f"{exc}{hint}") from None
    try:
        instrument = framework.construct(cls, name, spec, context, options)
    except BenchFileError:
        raise
    except Exception as exc:
        raise InstrumentError(f"{name}: {options.instrument}({spec.address!r}) failed: {exc}") from exc
    device_type = BridgeVoltageSource if spec.kind == "voltage_source" else BridgeDetector
    try:
        return device_type(name, instrument, framework.accessor, options)
    except Exception:
        framework.accessor.close(instrument)  # a failed setup must not leave the port (or a QCoDeS name) taken
        raise


@dataclass(frozen=True)
class Framework:
    """One instrument framework as labsat bridges it."""

    driver: str
    """The bench file's ``driver:`` name, also the name of the extra that installs the framework."""
    module: str
    """The framework's top-level package."""
    packages: tuple[str, ...]
    """Where its instrument classes may come from."""
    accessor: Accessor
    construct: Construct
