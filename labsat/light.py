"""A light source as callers see it: every change checked against the bench file's power and wavelength limits.

A laser is the one device on an optical bench whose output can hurt a person or a chip, so it gets the same
treatment as the voltage sources (:mod:`labsat.guard`): a change is validated whole before anything is sent
(a power or wavelength outside ``light_limits`` is refused naming the device, the quantity and the limit),
a halted guard refuses every change but switching off, and the safe state is output off, confirmed by
reading the instrument back. Switching on needs a power and a wavelength inside the limits, given with the
request or already set, so a laser found with an unknown or out-of-range setpoint cannot be switched on as
it stands.

The order of the commands keeps every intermediate state inside the envelope: switching off goes first,
switching on last, after the wavelength and the power are set.

The module holds no reference to :class:`~labsat.guard.SafetyGuard` itself (the guard builds these objects),
only to what it needs from it: the lock that orders all writes and the halt flag.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Protocol

from labsat.benchfile import LightLimits
from labsat.devices import LightSource, LightState
from labsat.errors import InstrumentError, LimitViolation

log = logging.getLogger(__name__)


class WriteGuard(Protocol):
    """What a guarded light source needs from the bench's guard."""

    @property
    def lock(self) -> threading.RLock: ...

    def refuse_if_halted(self) -> None: ...


class GuardedLightSource:
    """A laser behind the guard: ``set(power_mw=…, wavelength_nm=…, enabled=…)`` is all or nothing."""

    def __init__(self, guard: WriteGuard, name: str, device: LightSource, limits: LightLimits) -> None:
        self.name = name
        self.limits = limits
        self._guard = guard
        self._device = device
        self._state: LightState | None = self._read_or_unknown()

    def identity(self) -> str:
        return self._device.identity()

    def state(self) -> LightState | None:
        """What the instrument last reported (None: unknown after a failed exchange)."""
        return self._state

    def read_back(self) -> LightState:
        """Ask the instrument what it emits now."""
        with self._guard.lock:
            self._state = self._device.read_state()
            return self._state

    def set(
        self, *, power_mw: float | None = None, wavelength_nm: float | None = None, enabled: bool | None = None
    ) -> LightState:
        """Change any of power, wavelength and output state; every value is checked before any is sent."""
        with self._guard.lock:
            self._guard.refuse_if_halted()
            self.check(power_mw=power_mw, wavelength_nm=wavelength_nm, enabled=enabled)
            try:
                if enabled is False:
                    self._device.set_enabled(False)
                if wavelength_nm is not None:
                    self._device.set_wavelength_nm(float(wavelength_nm))
                if power_mw is not None:
                    self._device.set_power_mw(float(power_mw))
                if enabled is True:
                    self._device.set_enabled(True)
            finally:
                # Trust only what the instrument reports, also after a refusal half-way.
                self._state = self._read_or_unknown()
            return self._state if self._state is not None else self.read_back()

    def switch_on(self) -> LightState:
        return self.set(enabled=True)

    def switch_off(self) -> LightState:
        return self.set(enabled=False)

    def check(
        self, *, power_mw: float | None = None, wavelength_nm: float | None = None, enabled: bool | None = None
    ) -> None:
        """Raise :class:`~labsat.errors.LimitViolation` unless the change keeps the source inside its limits."""
        if power_mw is not None:
            self._check_value("power_mw", float(power_mw), self.limits.power_mw, "mW")
        if wavelength_nm is not None:
            self._check_value("wavelength_nm", float(wavelength_nm), self.limits.wavelength_nm, "nm")
        if enabled is not True:
            return
        present = self._state
        for key, given, unit in (("power_mw", power_mw, "mW"), ("wavelength_nm", wavelength_nm, "nm")):
            if given is not None:
                continue
            value = math.nan if present is None else float(getattr(present, key))
            low, high = getattr(self.limits, key)
            if not low <= value <= high:
                raise LimitViolation(
                    self.name,
                    key,
                    value,
                    f"switching on needs a {key} inside [{low:g}, {high:g}] {unit}; the present setpoint is not "
                    f"(give {key} with the request)",
                )

    def _check_value(self, key: str, value: float, limits: tuple[float, float], unit: str) -> None:
        low, high = limits
        if not math.isfinite(value):
            raise LimitViolation(self.name, key, value, "not a finite number")
        if value < low:
            raise LimitViolation(self.name, key, value, f"below the minimum {low:g} {unit}")
        if value > high:
            raise LimitViolation(self.name, key, value, f"above the maximum {high:g} {unit}")

    def safe_state(self) -> None:
        """Output off (also while halted), confirmed by a read-back; an output still on raises."""
        with self._guard.lock:
            try:
                self._device.set_enabled(False)
            finally:
                self._state = self._read_or_unknown()
            if self._state is None or self._state.enabled:
                what = "is still on" if self._state else "state is unknown"
                raise InstrumentError(f"{self.name}: the output {what} after switching off")

    def _read_or_unknown(self) -> LightState | None:
        try:
            return self._device.read_state()
        except Exception as exc:
            log.error("%s: cannot read the light source back (%s); marking it unknown", self.name, exc)
            return None
