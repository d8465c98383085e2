"""A Keysight tunable laser source (N7776C, or an 81600B module in an 8164B), emulated after Keysight's
programming guides (Tunable Laser Source commands), driving a :class:`~labsat.devices.LightSource` backend.

What it does that a driver has to get right:

- ``SOUR{n}:POW:UNIT 0|1|DBM|W``: replies to ``SOUR{n}:POW?`` come in that unit (dBm or W); a setting
  without a unit suffix is read in it too, so ``SOUR0:POW 0.001`` means 0.001 dBm on a laser in dBm.
  Power-on (and ``*RST``) presets dBm.
- Unit suffixes: ``PW|NW|UW|MW|W|DBM`` on powers, ``PM|NM|UM|MM|M`` on wavelengths; ``SOUR{n}:WAV?``
  answers in metres, ``SOUR{n}:WAV? MIN|MAX`` the module's tuning range.
- A power or wavelength outside the module's range is refused with -222 "Data out of range" and not
  applied; a setting with the output off is stored and takes effect when it is switched on.
- ``:LOCK 1,<password>`` engages the mainframe's laser safety lock (kept over a power cycle): while it
  is engaged ``SOUR{n}:POW:STAT 1`` is refused (-221) and every laser is off.
- A power cycle switches the output off and presets the power unit (dBm).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from labsat.devices import LightSource

from .scpi import Handler, ScpiEmulator, ScpiError, boolean, setting

POWER_UNITS_MW = {"PW": 1e-9, "NW": 1e-6, "UW": 1e-3, "MW": 1.0, "W": 1e3}
LENGTH_UNITS_NM = {"PM": 1e-3, "NM": 1.0, "UM": 1e3, "MM": 1e6, "M": 1e9}
DEFAULT_PASSWORD = "1234"


def _split_unit(argument: str) -> tuple[float, str]:
    """``"1.5MW"`` -> (1.5, ``"MW"``); a bare number has the unit ``""``."""
    match = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*", argument)
    if match is None:
        raise ScpiError(-104, "Data type error")
    return float(match.group(1)), match.group(2).upper()


class TunableLaserEmulator(ScpiEmulator):
    """One tunable laser in slot ``slot`` whose emitted light is ``backend``'s (e.g. the bench's simulated laser)."""

    def __init__(
        self,
        backend: LightSource,
        *,
        slot: int = 0,
        power_range_mw: tuple[float, float] = (0.0, 20.0),
        tuning_range_nm: tuple[float, float] = (1495.0, 1640.0),
        model: str = "N7776C",
    ) -> None:
        self.backend = backend
        self.slot = slot
        self.power_range_mw = power_range_mw
        self.tuning_range_nm = tuning_range_nm
        state = backend.read_state()
        self.output = state.enabled
        self.power_mw = state.power_mw
        self.wavelength_nm = min(max(state.wavelength_nm, tuning_range_nm[0]), tuning_range_nm[1])
        self.unit_watt = False
        self.locked = False
        self._applied = (state.enabled, state.power_mw, state.wavelength_nm)
        super().__init__(f"Keysight Technologies,{model},DE00000001,1.0")

    def commands(self) -> Mapping[str, Handler]:
        return {
            "SOURce#:POWer:STATe?": lambda s, _a: self._checked(s, str(int(self.output))),
            "SOURce#:POWer:STATe": setting(lambda s, a: self._set_output(s, a)),
            "SOURce#:POWer:UNIT?": lambda s, _a: self._checked(s, f"+{int(self.unit_watt)}"),
            "SOURce#:POWer:UNIT": setting(lambda s, a: self._set_unit(s, a)),
            "SOURce#:POWer[:LEVel][:IMMediate][:AMPLitude]?": lambda s, _a: self._checked(s, self._power_reply()),
            "SOURce#:POWer[:LEVel][:IMMediate][:AMPLitude]": setting(lambda s, a: self._set_power(s, a)),
            "SOURce#:WAVelength?": lambda s, a: self._checked(s, self._wavelength_reply(a)),
            "SOURce#:WAVelength": setting(lambda s, a: self._set_wavelength(s, a)),
            "LOCK?": lambda _s, _a: str(int(self.locked)),
            "LOCK": setting(lambda _s, a: self._set_lock(a)),
        }

    def power_cycle(self) -> None:
        with self.lock:
            self.output = False
            self.unit_watt = False
            self.errors.clear()
            self.end_of_message()

    def end_of_message(self) -> None:
        """Hand the message's settings to the backend: off first, on last, as the laser itself does."""
        state = (self.output, self.power_mw, self.wavelength_nm)
        if state == self._applied:
            return
        if not self.output:
            self.backend.set_enabled(False)
        self.backend.set_wavelength_nm(self.wavelength_nm)
        self.backend.set_power_mw(self.power_mw)
        if self.output:
            self.backend.set_enabled(True)
        self._applied = state

    # -- handlers ----------------------------------------------------------------------------------

    def _checked(self, suffixes: tuple[str, ...], reply: str) -> str:
        self._slot(suffixes)
        return reply

    def _slot(self, suffixes: tuple[str, ...]) -> None:
        if int(suffixes[0] or 0) != self.slot:
            raise ScpiError(-114, "Header suffix out of range")

    def _set_output(self, suffixes: tuple[str, ...], argument: str) -> None:
        self._slot(suffixes)
        on = boolean(argument)
        if on and self.locked:
            raise ScpiError(-221, "Settings conflict: laser lock is on")
        self.output = on

    def _set_unit(self, suffixes: tuple[str, ...], argument: str) -> None:
        self._slot(suffixes)
        unit = argument.strip().upper()
        if unit not in ("0", "1", "DBM", "W"):
            raise ScpiError(-224, "Illegal parameter value")
        self.unit_watt = unit in ("1", "W")

    def _set_power(self, suffixes: tuple[str, ...], argument: str) -> None:
        self._slot(suffixes)
        value, unit = _split_unit(argument)
        if not unit:
            unit = "W" if self.unit_watt else "DBM"
        if unit == "DBM":
            power_mw = 10 ** (value / 10)
        elif unit in POWER_UNITS_MW:
            power_mw = value * POWER_UNITS_MW[unit]
        else:
            raise ScpiError(-131, "Invalid suffix")
        low, high = self.power_range_mw
        if not low <= power_mw <= high:
            raise ScpiError(-222, "Data out of range")
        self.power_mw = power_mw

    def _power_reply(self) -> str:
        if self.unit_watt:
            return f"{self.power_mw * 1e-3:+.8E}"
        return f"{10 * math.log10(max(self.power_mw, 1e-12)):+.8E}"

    def _set_wavelength(self, suffixes: tuple[str, ...], argument: str) -> None:
        self._slot(suffixes)
        value, unit = _split_unit(argument)
        scale = LENGTH_UNITS_NM.get(unit or "M")
        if scale is None:
            raise ScpiError(-131, "Invalid suffix")
        low, high = self.tuning_range_nm
        if not low <= value * scale <= high:
            raise ScpiError(-222, "Data out of range")
        self.wavelength_nm = value * scale

    def _wavelength_reply(self, argument: str) -> str:
        which = argument.strip().upper()
        nm = {"": self.wavelength_nm, "MIN": self.tuning_range_nm[0], "MAX": self.tuning_range_nm[1]}.get(which)
        if nm is None:
            raise ScpiError(-224, "Illegal parameter value")
        return f"{nm * 1e-9:+.8E}"

    def _set_lock(self, argument: str) -> None:
        state, _, password = argument.partition(",")
        if password.strip().strip('"') != DEFAULT_PASSWORD:
            raise ScpiError(-221, "Settings conflict: wrong password")
        self.locked = boolean(state)
        if self.locked:
            self.output = False
