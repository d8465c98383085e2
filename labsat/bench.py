"""Opening a bench: instruments built from a bench file, each wrapped by the safety guard.

A :class:`Bench` is the only handle callers get on hardware. Its writable devices are
:class:`~labsat.guard.GuardedVoltageSource`, :class:`~labsat.guard.GuardedSLM` and
:class:`~labsat.light.GuardedLightSource` objects; the raw
instruments stay private. Use it as a
context manager: leaving the block, normally or by an exception, drives every output to its safe
state; so do SIGINT, SIGTERM and process exit while it is open.

A bench has one owner across processes too: :func:`open_bench` locks it (:mod:`labsat.ownership`)
before any instrument is touched, and another process that opens it meets
:class:`~labsat.ownership.BenchInUse` naming the holder, never a second guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from labsat import safety
from labsat.benchfile import BenchFile, FrameLimits, load_bench_file
from labsat.clock import Clock, RealClock, VirtualClock
from labsat.devices import BatchStreamer, Detector
from labsat.errors import BenchFileError, RefusedRequest, UnknownChannel
from labsat.guard import GuardedSLM, GuardedVoltageSource, SafetyGuard
from labsat.light import GuardedLightSource
from labsat.ownership import BenchLock, lock_keys
from labsat.physics.compute import default_device
from labsat.registry import BenchContext, driver_factory
from labsat.systems.kind import System, build_system

DEFAULT_BENCH = "sim-mrr.yaml"


def builtin_bench_path(name: str = DEFAULT_BENCH) -> Path:
    """Path of a bench file shipped with labsat (``config/`` in the source tree)."""
    resource = files("labsat.benches") / name
    with as_file(resource) as path:
        if not path.exists():
            raise BenchFileError(name, "", "no such built-in bench file")
        return path


@dataclass
class Bench:
    """Open instruments of one bench, behind one guard."""

    spec: BenchFile
    path: str
    clock: Clock
    guard: SafetyGuard
    sources: dict[str, GuardedVoltageSource]
    detectors: dict[str, Detector]
    streamer: BatchStreamer | None
    torch_device: torch.device
    slms: dict[str, GuardedSLM] = field(default_factory=dict)
    lights: dict[str, GuardedLightSource] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    instruments: list[Any] = field(default_factory=list)
    ownership: BenchLock | None = None
    system: System = field(init=False)
    _closed: bool = False
    _hold: bool = False

    def __post_init__(self) -> None:
        self.system = build_system(self)

    @property
    def name(self) -> str:
        return self.spec.name

    def source(self, name: str) -> GuardedVoltageSource:
        try:
            return self.sources[name]
        except KeyError:
            raise UnknownChannel(
                f"bench {self.name!r} has no voltage source {name!r} (it has: {', '.join(self.sources)})"
            ) from None

    def device(self, name: str) -> GuardedVoltageSource | GuardedSLM | GuardedLightSource | Detector:
        """The guarded device (or the detector) named ``name`` in the bench file."""
        for devices in (self.sources, self.slms, self.lights, self.detectors):
            if name in devices:
                return devices[name]  # each table holds one kind
        raise UnknownChannel(f"bench {self.name!r} has no device {name!r} (it has: {', '.join(self.spec.devices)})")

    def resolve(self, target: str) -> tuple[GuardedVoltageSource, int]:
        """``"device.channel"`` -> (guarded source, channel position); unknown names raise."""
        device, _, channel = target.partition(".")
        if not channel:
            raise UnknownChannel(f"{target!r} is not DEVICE.CHANNEL")
        source = self.source(device)
        return source, source.position(channel)

    def channel_value(self, target: str) -> float:
        """Last value written to ``"device.channel"``."""
        source, position = self.resolve(target)
        return float(source.values()[position])

    def set_channels(self, assignments: dict[str, float]) -> None:
        """Set ``{"device.channel": volts}``; every value is checked before any device is written."""
        by_device: dict[str, dict[str, float]] = {}
        for target, value in assignments.items():
            source, _ = self.resolve(target)
            by_device.setdefault(source.name, {})[target.partition(".")[2]] = value
        with self.guard.lock:
            planned = {device: self.source(device).with_changes(values) for device, values in by_device.items()}
            for device, vector in planned.items():
                self.guard.validate(self.source(device), vector, pending=planned)
            # Devices whose power falls go first: then every moment of the write stays inside the bench
            # budget, whose total only falls, then rises to the validated end point.
            for device, vector in sorted(planned.items(), key=lambda item: self._power_change(*item)):
                self.source(device).set_vector(vector)

    def _power_change(self, device: str, target: np.ndarray) -> float:
        source = self.source(device)
        return float(source.power_mw(target).sum() - source.budget_power_mw().sum())

    def safe_state(self) -> None:
        """Ramp every output to its safe value and switch it off."""
        self.guard.safe_state()

    def hold_outputs(self) -> None:
        """Leave the outputs as they are when this bench closes normally.

        For manual operation (``labsat set``, ``labsat devices``), where leaving the values set is the
        point. An exception or a signal still drives the bench to its safe state.
        """
        self._hold = True

    def close(self, *, failed: bool = False) -> None:
        """Safe state (unless held and not ``failed``), then forget the bench; idempotent."""
        if self._closed:
            return
        try:
            if failed or not self._hold:
                self.safe_state()
        finally:
            self._closed = True
            safety.unregister(self)
            self._release()

    def _release(self) -> None:
        """Close the instruments, then what they shared (e.g. emulator servers), after the safe state; then
        give the bench up to other processes."""
        try:
            _close_all([*self.instruments, *self.shared.values()])
        finally:
            if self.ownership is not None:
                self.ownership.release()

    def note_job(self, job: str | None) -> None:
        """Tell other processes which job holds the bench now (shown when they find it in use)."""
        if self.ownership is not None:
            self.ownership.note(job=job)

    def __enter__(self) -> Bench:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A refused request wrote nothing, so there is nothing to make safe; anything else might have.
        self.close(failed=exc_type is not None and not issubclass(exc_type, RefusedRequest))


def _close_all(resources: list[Any]) -> None:
    """Close every resource that can be closed, in order."""
    for resource in resources:
        close = getattr(resource, "close", None)
        if callable(close):
            close()


def open_bench(
    bench: str | Path | BenchFile,
    *,
    data_dir: Path | None = None,
    torch_device: torch.device | None = None,
) -> Bench:
    """Build every device of a bench file behind one guard and register it for safe-state hooks.

    The bench is locked for this process first: :class:`~labsat.ownership.BenchInUse` if another holds it.
    """
    if isinstance(bench, BenchFile):
        spec, path, bench_file = bench, f"<bench {bench.name}>", None
    else:
        spec, path, bench_file = load_bench_file(bench), str(bench), str(bench)
    clock: Clock = VirtualClock() if spec.clock == "virtual" else RealClock()
    context = BenchContext(
        bench=spec,
        path=path,
        clock=clock,
        torch_device=torch_device or default_device(),
        data_dir=Path(data_dir) if data_dir is not None else None,
    )
    guard = SafetyGuard(clock, spec.limits.heater_power_budget_mw)
    sources: dict[str, GuardedVoltageSource] = {}
    slms: dict[str, GuardedSLM] = {}
    lights: dict[str, GuardedLightSource] = {}
    detectors: dict[str, Detector] = {}
    instruments: list[Any] = []
    ownership = BenchLock.acquire(spec.name, lock_keys(bench_file, (d.address for d in spec.devices.values())))
    try:
        for name, device_spec in spec.devices.items():
            device = driver_factory(device_spec.driver)(name, device_spec, context)
            instruments.append(device)
            if device_spec.kind == "voltage_source":
                assert device_spec.channels is not None
                sources[name] = guard.add_voltage_source(
                    name,
                    device,
                    device_spec.channels.names,
                    device_spec.channel_limits_list(),
                    device_spec.neighbour_max_diff,
                )
            elif device_spec.kind == "slm":
                slms[name] = guard.add_slm(name, device, device_spec.frame_limits or FrameLimits())
            elif device_spec.kind == "light_source":
                assert device_spec.light_limits is not None  # the bench file requires them
                lights[name] = guard.add_light_source(name, device, device_spec.light_limits)
            elif device_spec.kind == "detector":
                detectors[name] = device
        opened = Bench(
            spec=spec,
            path=path,
            clock=clock,
            guard=guard,
            sources=sources,
            slms=slms,
            lights=lights,
            detectors=detectors,
            streamer=context.shared.get("streamer"),
            instruments=instruments,
            torch_device=context.torch_device,
            shared=context.shared,
            ownership=ownership,
        )
    except BaseException:
        _close_all([*instruments, *context.shared.values()])  # a device that fails must not leave ports taken
        ownership.release()
        raise
    safety.register(opened)
    return opened
