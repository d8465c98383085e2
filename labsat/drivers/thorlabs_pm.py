"""Thorlabs PM100-series optical power meter (PM100D/USB/A, PM400) over SCPI, as a 1-channel Detector.

Configured at connect time from bench options: ``wavelength_nm`` (``SENS:CORR:WAV``, the sensor's
responsivity correction: a wrong wavelength is a wrong reading, so it is set whenever given),
``range_w`` (``SENS:POW:RANG``; omitted means auto-ranging, ``SENS:POW:RANG:AUTO 1``) and
``average_count`` (``SENS:AVER:COUN``). A reading is ``MEAS:POW?`` in watts. USB models appear as
``USB0::0x1313::0x8072::<serial>::INSTR`` through pyvisa-py (needs pyusb) or a vendor VISA.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from labsat.benchfile import DeviceSpec
from labsat.registry import BenchContext

from .instrument import Control, Instrument, Scpi, flag, on_off, open_link, scpi_dialect, strict_range
from .transport import Link

SAMPLE_TIME_S = 3e-3  # one averaged sample of a PM100 takes about 3 ms


class ThorlabsPM(Instrument):
    """A PM100-series power meter as a labsat :class:`~labsat.devices.Detector` with one channel (watts)."""

    controls: Mapping[str, Control] = {
        "wavelength_nm": Control("SENS:CORR:WAV?", "SENS:CORR:WAV {value:g}", float, strict_range(100.0, 25000.0)),
        "auto_range": Control("SENS:POW:RANG:AUTO?", "SENS:POW:RANG:AUTO {value:d}", on_off, flag),
        "range_w": Control("SENS:POW:RANG?", "SENS:POW:RANG {value:g}", float, strict_range(0.0, 100.0)),
        "average_count": Control("SENS:AVER:COUN?", "SENS:AVER:COUN {value:d}", int),
        "power_w": Control("MEAS:POW?", None, float, doc="one power reading, watts"),
    }

    def __init__(
        self,
        name: str,
        link: Link,
        *,
        wavelength_nm: float | None = None,
        range_w: float | None = None,
        average_count: int | None = None,
        dialect: Scpi | None = None,
    ) -> None:
        super().__init__(name, link, dialect)
        self._settings = (wavelength_nm, range_w, average_count)
        self._average_count = 1

    n_channels = 1

    @property
    def integration_time(self) -> float:
        return self._average_count * SAMPLE_TIME_S

    def configure(self) -> None:
        wavelength_nm, range_w, average_count = self._settings
        if wavelength_nm is not None:
            self.set("wavelength_nm", wavelength_nm)
        if range_w is None:
            self.set("auto_range", True)
        else:
            self.set("auto_range", False)
            self.set("range_w", range_w)
        if average_count is not None:
            self.set("average_count", average_count)
        self._average_count = int(self.get("average_count"))

    def read(self) -> np.ndarray:
        return np.array([float(self.get("power_w"))])


def build(name: str, spec: DeviceSpec, context: BenchContext) -> ThorlabsPM:
    """Entry point ``thorlabs_pm``."""
    options = spec.options

    def number(key: str) -> float | None:
        return None if options.get(key) is None else float(options[key])

    count = options.get("average_count")
    return ThorlabsPM(
        name,
        open_link(name, spec, context),
        wavelength_nm=number("wavelength_nm"),
        range_w=number("range_w"),
        average_count=None if count is None else int(count),
        dialect=scpi_dialect(options),
    ).connect()
