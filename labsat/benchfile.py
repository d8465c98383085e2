"""Bench files: the YAML that names a bench's instruments, their limits and the system they form.

Validation happens here, before any instrument is opened: a bench file that loads is one whose
limits make sense, whose drivers exist and whose channel names resolve. Every problem becomes one
:class:`~labsat.errors.BenchFileError` naming the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from labsat.entrypoints import UnknownSystemKind, known_drivers, known_system_types, load_system_kind
from labsat.errors import BenchFileError


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt limit must never be silently ignored; nor is NaN or ±inf a limit."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MAX_VOLTS = 1000.0
"""Largest |voltage| a bench file may name: beyond any lab source labsat drives, so a typo (1e308) is refused."""
MIN_STEP_V = 1e-6
"""Smallest ramp step: below a microvolt a full-range ramp would take more steps than any run can wait for."""
MAX_STEP_DELAY_S = 60.0
"""Longest wait between ramp steps."""


class ChannelLimits(_Strict):
    """Static limits of one output channel. Units: V, mA, mW, Ω, s."""

    voltage: tuple[float, float] = Field(description="Allowed output range [min, max] in volts.")
    current_max_ma: float | None = Field(None, gt=0, le=1e5, description="Largest |V|/R in mA (needs resistance).")
    power_max_mw: float | None = Field(None, gt=0, le=1e6, description="Largest V²/R in mW (needs resistance).")
    resistance_ohm: float | None = Field(None, gt=0, le=1e12, description="Load (heater) resistance.")
    max_step: float | None = Field(
        None, ge=MIN_STEP_V, le=MAX_VOLTS, description="Largest single voltage step; larger moves ramp."
    )
    step_delay: float = Field(0.0, ge=0, le=MAX_STEP_DELAY_S, description="Seconds to wait between ramp steps.")
    safe: float = Field(0.0, description="Value the channel returns to in the safe state.")

    @model_validator(mode="after")
    def _consistent(self) -> ChannelLimits:
        low, high = self.voltage
        if not (abs(low) <= MAX_VOLTS and abs(high) <= MAX_VOLTS):
            raise ValueError(f"voltage range [{low:g}, {high:g}] must lie within ±{MAX_VOLTS:g} V")
        if low > high:
            raise ValueError(f"voltage range is inverted: min {low:g} > max {high:g}")
        if not low <= self.safe <= high:
            raise ValueError(f"safe value {self.safe:g} lies outside the voltage range [{low:g}, {high:g}]")
        if (self.current_max_ma or self.power_max_mw) and self.resistance_ohm is None:
            raise ValueError("current_max_ma and power_max_mw need resistance_ohm")
        return self

    def merged(self, override: dict[str, Any]) -> ChannelLimits:
        """These limits with a per-channel override applied (validated again)."""
        return ChannelLimits.model_validate({**self.model_dump(), **override})


class ChannelRange(_Strict):
    """Channels ``prefix0 .. prefix{count-1}``, on instrument channels ``first .. first+count-1``."""

    prefix: str = "ch"
    count: int = Field(gt=0)
    first: int = Field(0, ge=0)

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(self.count)]

    @property
    def instrument_channels(self) -> range:
        return range(self.first, self.first + self.count)


DeviceKind = Literal["voltage_source", "detector", "slm", "light_source"]


class FrameLimits(_Strict):
    """What an SLM may be shown: the gray levels its LUT covers, and the uniform frame of its safe state."""

    gray: tuple[int, int] = Field((0, 255), description="Allowed gray levels [min, max], within 0..255.")
    safe_gray: int = Field(0, description="Gray level of the uniform frame the SLM shows in the safe state.")

    @model_validator(mode="after")
    def _consistent(self) -> FrameLimits:
        low, high = self.gray
        if not 0 <= low <= high <= 255:
            raise ValueError(f"gray range must satisfy 0 <= min <= max <= 255, got [{low}, {high}]")
        if not low <= self.safe_gray <= high:
            raise ValueError(f"safe gray {self.safe_gray} lies outside the gray range [{low}, {high}]")
        return self


class LightLimits(_Strict):
    """What a light source may emit: its output power and wavelength ranges. Its safe state is output off."""

    power_mw: tuple[float, float] = Field(description="Allowed output power [min, max] in mW.")
    wavelength_nm: tuple[float, float] = Field(description="Allowed wavelength [min, max] in nm.")

    @model_validator(mode="after")
    def _consistent(self) -> LightLimits:
        for key, (low, high) in (("power_mw", self.power_mw), ("wavelength_nm", self.wavelength_nm)):
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"{key} must be finite numbers, got [{low:g}, {high:g}]")
            if low > high:
                raise ValueError(f"{key} range is inverted: min {low:g} > max {high:g}")
        if self.power_mw[0] < 0:
            raise ValueError(f"power_mw min {self.power_mw[0]:g} is negative")
        if self.wavelength_nm[0] <= 0:
            raise ValueError(f"wavelength_nm min {self.wavelength_nm[0]:g} must be positive")
        return self


class DeviceSpec(_Strict):
    """One instrument (or one group of channels on an instrument)."""

    driver: str = Field(description="A driver registered in the 'labsat.devices' entry-point group, or 'sim'.")
    kind: DeviceKind
    address: str | None = Field(None, description="Transport address (VISA resource, serial URL, sim://...).")
    channels: ChannelRange | None = None
    limits: ChannelLimits | None = Field(None, description="Limits shared by every channel of this device.")
    channel_limits: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-channel overrides of `limits`, keyed by channel name."
    )
    neighbour_max_diff: float | None = Field(
        None, gt=0, description="Largest |V[i] - V[i+1]| between neighbouring channels."
    )
    frame_limits: FrameLimits | None = Field(
        None, description="Gray levels an SLM may show and its safe frame (default: 0..255, safe at 0)."
    )
    light_limits: LightLimits | None = Field(
        None, description="Power and wavelength a light_source may emit (required for one); safe state: off."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Driver-specific settings.")

    @model_validator(mode="after")
    def _kind_needs(self) -> DeviceSpec:
        if self.frame_limits is not None and self.kind != "slm":
            raise ValueError(f"frame_limits belong to an slm, not a {self.kind}")
        if self.light_limits is not None and self.kind != "light_source":
            raise ValueError(f"light_limits belong to a light_source, not a {self.kind}")
        if self.kind == "light_source" and self.light_limits is None:
            raise ValueError("a light_source needs 'light_limits' (power_mw and wavelength_nm ranges)")
        if self.kind == "voltage_source":
            if self.channels is None:
                raise ValueError("a voltage_source needs 'channels'")
            if self.limits is None:
                raise ValueError("a voltage_source needs 'limits'")
        if self.kind == "detector" and self.channels is None:
            raise ValueError("a detector needs 'channels'")
        return self

    def channel_limits_list(self) -> list[ChannelLimits]:
        """Effective limits of every channel, in channel order."""
        assert self.channels is not None and self.limits is not None
        return [self.limits.merged(self.channel_limits.get(name, {})) for name in self.channels.names]


class BenchLimits(_Strict):
    """Limits that span devices."""

    heater_power_budget_mw: float | None = Field(
        None, gt=0, le=1e9, description="Largest total V²/R over every channel with a resistance, in mW."
    )


@dataclass(frozen=True)
class RoleNeed:
    """One device a system role names, and what it must be (``_check_system`` enforces it)."""

    role: str
    device: str
    kind: DeviceKind
    channels: int | None = None
    """Channel count (voltage sources, detectors)."""
    shape: tuple[int, int] | None = None
    """Frame shape (SLMs), checked where the device declares ``options.shape``."""
    position: int | None = None
    """Position within a list role (one SLM per mask); None for a single device."""

    @property
    def key(self) -> str:
        """Where the role sits in the bench file, below ``system``."""
        return self.role if self.position is None else f"{self.role}.{self.position}"


class SystemSpec(_Strict):
    """The ``system:`` section: what the bench's devices form. Each system kind has its own model of it.

    The kind registered for ``type`` (:mod:`labsat.systems.kind`, found through :mod:`labsat.entrypoints`)
    supplies the model a bench file is validated with; every model names its devices by role
    (:meth:`device_roles`), which is what the cross-checks here and the building of the System need.
    """

    type: str = Field(description="The system kind, registered in the 'labsat.systems' entry-point group.")

    @property
    def label(self) -> str:
        """How messages name the system ("8x8 bank")."""
        raise NotImplementedError

    def device_roles(self) -> list[RoleNeed]:
        """Each role's device, kind and channel count or frame shape."""
        raise NotImplementedError


class BenchFile(_Strict):
    """The whole bench file."""

    name: str
    description: str = ""
    clock: Literal["real", "virtual"] = Field("real", description="'virtual' for simulated benches.")
    seed: int = Field(0, description="Seed for everything random on this bench (simulated chips, noise).")
    devices: dict[str, DeviceSpec]
    limits: BenchLimits = BenchLimits()
    system: SerializeAsAny[SystemSpec] = Field(description="The system the devices form; its keys are its kind's.")
    simulator: dict[str, Any] = Field(
        default_factory=dict, description="Physics of the simulated chip, read by simulated devices."
    )

    @field_validator("system", mode="before")
    @classmethod
    def _system_of_its_kind(cls, value: Any) -> Any:
        """Validate ``system:`` with the model of the kind its ``type`` names."""
        if not isinstance(value, dict):
            return value
        if "type" not in value:
            raise ValueError(f"system.type is missing (known: {', '.join(known_system_types())})")
        try:
            spec: type[SystemSpec] = load_system_kind(str(value["type"])).spec
        except UnknownSystemKind as exc:
            raise ValueError(str(exc)) from None
        return spec.model_validate(value)


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-after"))


def parse_bench(data: Any, path: str) -> BenchFile:
    """Validate already-parsed YAML; errors name ``path`` and the key."""
    if not isinstance(data, dict):
        raise BenchFileError(path, "", "a bench file must be a YAML mapping")
    try:
        bench = BenchFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "required key is missing"
        elif first["type"] == "extra_forbidden":
            message = "unknown key"
        raise BenchFileError(path, _key(first["loc"]), message) from None
    _check_references(bench, path)
    return bench


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error.

    Plain YAML keeps the last of two ``heaters:`` blocks, so a second block pasted below the first would
    silently replace the device's limits.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (a second one would replace the first)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_bench_file(path: str | Path) -> BenchFile:
    """Read and validate a bench file (UTF-8 YAML, no key given twice)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchFileError(str(path), "", f"cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        byte = f"byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        raise BenchFileError(str(path), "", f"not UTF-8 text ({byte})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise BenchFileError(str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_bench(data, str(path))


def _check_references(bench: BenchFile, path: str) -> None:
    """Cross-field rules pydantic cannot see: driver names, channel names, shared channels, roles."""
    drivers = known_drivers()
    claimed: dict[tuple[str, int], str] = {}
    for name, device in bench.devices.items():
        if device.driver not in drivers:
            raise BenchFileError(
                path,
                f"devices.{name}.driver",
                f"unknown driver {device.driver!r} (known: {', '.join(sorted(drivers))})",
            )
        if device.channels is not None:
            names = set(device.channels.names)
            for channel, override in device.channel_limits.items():
                if channel not in names:
                    raise BenchFileError(
                        path,
                        f"devices.{name}.channel_limits.{channel}",
                        f"unknown channel name (this device has {device.channels.names[0]}"
                        f"..{device.channels.names[-1]})",
                    )
                try:
                    assert device.limits is not None
                    device.limits.merged(override)
                except ValidationError as exc:
                    raise BenchFileError(
                        path,
                        f"devices.{name}.channel_limits.{channel}",
                        exc.errors()[0]["msg"].removeprefix("Value error, "),
                    ) from None
            if device.address is not None:
                for number in device.channels.instrument_channels:
                    other = claimed.setdefault((device.address, number), name)
                    if other != name:
                        raise BenchFileError(
                            path,
                            f"devices.{name}.channels",
                            f"instrument channel {number} at {device.address} is already used by device {other!r}",
                        )
    _check_system(bench, path)


def _check_system(bench: BenchFile, path: str) -> None:
    system = bench.system
    serving: dict[str, str] = {}
    for need in system.device_roles():
        key, name = f"system.{need.key}", need.device
        device = bench.devices.get(name)
        if device is None:
            raise BenchFileError(path, key, f"no device named {name!r}")
        if name in serving:
            raise BenchFileError(path, key, f"device {name!r} already serves as {serving[name]}")
        serving[name] = key
        if device.kind != need.kind:
            raise BenchFileError(path, key, f"device {name!r} is a {device.kind}, not a {need.kind}")
        if need.channels is not None:
            assert device.channels is not None
            if device.channels.count != need.channels:
                raise BenchFileError(
                    path,
                    key,
                    f"device {name!r} has {device.channels.count} channels; a {system.label} needs {need.channels}",
                )
        declared = device.options.get("shape")
        if need.shape is not None and declared is not None and tuple(declared) != need.shape:
            raise BenchFileError(
                path,
                key,
                f"device {name!r} is a {'x'.join(map(str, declared))} SLM; a {system.label} needs "
                f"{need.shape[0]}x{need.shape[1]}",
            )
