"""A Thorlabs PM100D / PM100USB optical power meter, emulated after Thorlabs' SCPI command reference.

What it does that a driver has to get right:

- ``SENS:POW:UNIT W|DBM``: readings come in the unit the meter is in, and the unit survives a power
  cycle (the meter keeps it in non-volatile memory): a meter someone left in dBm answers
  ``MEAS:POW?`` with ``-6.02`` for 250 µW.
- ``SENS:CORR:WAV``: a wavelength outside the sensor's range is coerced to the nearest end of it,
  silently, as some firmware does (``coerce=False``: refused with -222 instead).
- ``SENS:AVER:COUN``: every reading averages that many samples of about 3 ms each, so ``MEAS:POW?``
  takes ``count × 3 ms`` to answer.
- Over range (above the manual range, or above the sensor's maximum when auto-ranging) the meter
  answers ``9.9E37`` instead of a power.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from .scpi import Handler, ScpiEmulator, ScpiError, boolean, in_range, number, setting

SAMPLE_TIME_S = 3e-3
OVER_RANGE = 9.9e37


class PowerMeterEmulator(ScpiEmulator):
    """A PM100 whose sensor sees ``power_w()`` watts; ``sensor_nm`` is the sensor's wavelength range."""

    def __init__(
        self,
        power_w: Callable[[], float],
        *,
        model: str = "PM100D",
        sensor_nm: tuple[float, float] = (400.0, 1800.0),
        sensor_max_w: float = 0.5,
        unit: str = "W",
        coerce: bool = True,
        sample_time_s: float = SAMPLE_TIME_S,
    ) -> None:
        self.power_w = power_w
        self.sensor_nm = sensor_nm
        self.sensor_max_w = sensor_max_w
        self.unit = unit
        self.coerce = coerce
        self.sample_time_s = sample_time_s
        self._defaults()
        super().__init__(f"Thorlabs,{model},P0000001,2.0.0")

    def _defaults(self) -> None:
        self.wavelength_nm = 1550.0
        self.auto_range = True
        self.range_w = 0.01
        self.average_count = 1

    def power_cycle(self) -> None:
        with self.lock:
            self._defaults()  # the power unit is kept: it lives in non-volatile memory

    def commands(self) -> Mapping[str, Handler]:
        def store(attribute: str, parse: Callable[[str], Any]) -> Handler:
            return setting(lambda _s, a: setattr(self, attribute, parse(a)))

        return {
            "MEASure[:SCALar]:POWer?": lambda _s, _a: self._measure(),
            "SENSe:POWer[:DC]:UNIT?": lambda _s, _a: self.unit,
            "SENSe:POWer[:DC]:UNIT": store("unit", self._unit),
            "SENSe:CORRection:WAVelength?": lambda _s, _a: f"{self.wavelength_nm:g}",
            "SENSe:CORRection:WAVelength": store("wavelength_nm", self._wavelength),
            "SENSe:POWer[:DC]:RANGe:AUTO?": lambda _s, _a: str(int(self.auto_range)),
            "SENSe:POWer[:DC]:RANGe:AUTO": store("auto_range", boolean),
            "SENSe:POWer[:DC]:RANGe[:UPPer]?": lambda _s, _a: f"{self.range_w:g}",
            "SENSe:POWer[:DC]:RANGe[:UPPer]": store("range_w", lambda a: in_range(number(a), 1e-9, 10.0)),
            "SENSe:AVERage[:COUNt]?": lambda _s, _a: str(self.average_count),
            "SENSe:AVERage[:COUNt]": store("average_count", lambda a: int(in_range(number(a), 1, 10000))),
        }

    @staticmethod
    def _unit(argument: str) -> str:
        unit = argument.strip().upper()
        if unit not in ("W", "DBM"):
            raise ScpiError(-224, "Illegal parameter value")
        return unit

    def _wavelength(self, argument: str) -> float:
        low, high = self.sensor_nm
        value = number(argument)
        if self.coerce:
            return min(max(value, low), high)
        return in_range(value, low, high)

    def _measure(self) -> str:
        time.sleep(self.average_count * self.sample_time_s)  # the meter averages before it answers
        watts = float(self.power_w())
        top = self.sensor_max_w if self.auto_range else self.range_w
        if watts > top:
            return f"{OVER_RANGE:.1E}"
        if self.unit == "DBM":
            return f"{10 * math.log10(max(watts, 1e-15) / 1e-3):.6f}"
        return f"{watts:.9e}"
