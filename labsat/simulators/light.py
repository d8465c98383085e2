"""The simulated laser of a bench (``driver: sim``, ``kind: light_source``): the light the simulated chip sees.

With a light source on a simulated bench, the chip's input light follows it: the simulator's
``input_power_mw`` is what reaches the chip while the laser emits ``options.nominal_power_mw`` (default
1 mW), and it scales in proportion to the laser's power; with the output off no light reaches the
detectors, which then read their dark level and noise. A bench without a light source keeps the
simulator's fixed input power (a laser the bench does not control). The wavelength is held and
reported; the simulated chips do not tune with it.

Options: ``role`` (``light``, optional), ``nominal_power_mw``, ``wavelength_nm`` (the wavelength at
power-on, default 1550), ``power_mw`` (the setpoint at power-on, default 0). The output starts off.
"""

from __future__ import annotations

import math
from typing import Any

from labsat.benchfile import DeviceSpec
from labsat.clock import Clock
from labsat.devices import LightState
from labsat.errors import BenchFileError, InstrumentError
from labsat.registry import BenchContext

LIGHT_OPTIONS = frozenset({"role", "nominal_power_mw", "wavelength_nm", "power_mw"})


class SimLightSource:
    """A laser held in memory: output state, power setpoint and wavelength; each command costs bus time."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        nominal_power_mw: float = 1.0,
        wavelength_nm: float = 1550.0,
        power_mw: float = 0.0,
        bus_latency_s: float = 0.0,
    ) -> None:
        if not nominal_power_mw > 0:
            raise ValueError(f"nominal_power_mw must be positive, got {nominal_power_mw:g}")
        self.name = name
        self.clock = clock
        self.nominal_power_mw = float(nominal_power_mw)
        self.bus_latency_s = bus_latency_s
        self.enabled = False
        self.power_mw = float(power_mw)
        self.wavelength_nm = float(wavelength_nm)

    def identity(self) -> str:
        return f"labsat simulated laser ({self.name}, nominal {self.nominal_power_mw:g} mW)"

    def set_enabled(self, on: bool) -> None:
        self.clock.sleep(self.bus_latency_s)
        self.enabled = bool(on)

    def set_power_mw(self, power_mw: float) -> None:
        self._finite("power_mw", power_mw)
        if power_mw < 0:
            raise InstrumentError(f"{self.name}: a power of {power_mw:g} mW is negative")
        self.clock.sleep(self.bus_latency_s)
        self.power_mw = float(power_mw)

    def set_wavelength_nm(self, wavelength_nm: float) -> None:
        self._finite("wavelength_nm", wavelength_nm)
        self.clock.sleep(self.bus_latency_s)
        self.wavelength_nm = float(wavelength_nm)

    def read_state(self) -> LightState:
        return LightState(self.enabled, self.power_mw, self.wavelength_nm)

    def input_scale(self) -> float:
        """The chip's input light as a fraction of the simulator's ``input_power_mw`` (0 with the output off)."""
        return self.power_mw / self.nominal_power_mw if self.enabled else 0.0

    def _finite(self, key: str, value: float) -> None:
        if not math.isfinite(value):
            raise InstrumentError(f"{self.name}: {key} {value!r} is not a number")


def light_scale(light: SimLightSource | None) -> float:
    """Input light of a chip with ``light`` (None: no light source on the bench, the fixed input power)."""
    return 1.0 if light is None else light.input_scale()


def build_sim_light(chip: Any, name: str, spec: DeviceSpec, context: BenchContext) -> SimLightSource:
    """The bench's simulated laser, attached to ``chip`` so that its input light follows the laser."""
    options: dict[str, Any] = spec.options
    unknown = set(options) - LIGHT_OPTIONS
    if unknown:
        raise BenchFileError(context.path, f"devices.{name}.options.{sorted(unknown)[0]}", "unknown key")
    if options.get("role", "light") != "light":
        raise BenchFileError(context.path, f"devices.{name}.options.role", "a sim light_source has role 'light'")
    if not hasattr(chip, "light"):
        raise BenchFileError(
            context.path, f"devices.{name}.kind", f"the simulated {chip.label} does not model a light source"
        )
    if chip.light is not None:
        raise BenchFileError(context.path, f"devices.{name}", "the simulated chip already has a light source")
    numbers: dict[str, float] = {}
    for key in ("nominal_power_mw", "wavelength_nm", "power_mw"):
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise BenchFileError(context.path, f"devices.{name}.options.{key}", "must be a number >= 0")
            numbers[key] = float(value)
    try:
        light = SimLightSource(name, context.clock, bus_latency_s=chip.config.bus_latency_s, **numbers)
    except ValueError as exc:
        raise BenchFileError(context.path, f"devices.{name}.options.nominal_power_mw", str(exc)) from None
    chip.light = light
    return light
