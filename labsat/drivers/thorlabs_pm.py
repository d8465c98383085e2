"""Thorlabs PM100-series optical power meter (PM100D/USB/A, PM400) over SCPI, as a 1-channel Detector.

At connect time, and again after every reconnect, each setting confirmed with ``SYST:ERR?``, after a
``*CLS`` (an error someone else left in the queue must not fail the connect):

1. ``SENS:POW:UNIT W``, read back: a meter left in dBm by someone else answers ``MEAS:POW?`` in
   dBm, and ``-6.02`` read as watts is nonsense that looks like a number;
2. ``SENS:CORR:WAV`` from ``options.wavelength_nm`` (the sensor's responsivity correction: a wrong
   wavelength is a wrong reading), then read back whether set or not: some firmware coerces a
   wavelength outside the sensor's range silently, so a read-back that differs from the request by
   more than ``options.wavelength_tolerance_nm`` (default 0.5) refuses the connect, and the
   wavelength in use is :attr:`ThorlabsPM.wavelength_nm`;
3. ``SENS:POW:RANG`` from ``options.range_w``, or auto-ranging (``SENS:POW:RANG:AUTO 1``) without it;
4. ``SENS:AVER:COUN`` from ``options.average_count`` (default 1, so the reading time is known):
   every reading then takes about ``count × 3 ms``, which the link's timeout must cover: the bench
   entry's ``timeout_s`` is extended by :func:`reading_time_s` and a link with a shorter one is
   refused at connect.

A reading is ``MEAS:POW?`` in watts. An over-range reading (``9.9E37``, SCPI's +infinity) is not a
power: it raises :class:`~.conditions.OverRange` naming the meter and its channel. USB models appear
as ``USB0::0x1313::0x8072::<serial>::INSTR`` through pyvisa-py (needs pyusb) or a vendor VISA.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from labsat.benchfile import DeviceSpec
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

from .conditions import OverRange, channel_where
from .instrument import Control, Instrument, Scpi, flag, on_off, one_of, open_link, scpi_dialect, strict_range
from .transport import Link, RetryPolicy

log = logging.getLogger(__name__)

SAMPLE_TIME_S = 3e-3  # one averaged sample of a PM100 takes about 3 ms
READING_MARGIN = 1.5  # the reading time is approximate; the timeout covers it with this factor
OVER_RANGE = 9.0e37  # SCPI's +infinity is 9.9E37 and NaN 9.91E37: anything this large is no power


def reading_time_s(average_count: int) -> float:
    """How much longer than a plain exchange one reading can take at ``average_count`` samples."""
    return READING_MARGIN * average_count * SAMPLE_TIME_S


class ThorlabsPM(Instrument):
    """A PM100-series power meter as a labsat :class:`~labsat.devices.Detector` with one channel (watts)."""

    controls: Mapping[str, Control] = {
        "unit": Control("SENS:POW:UNIT?", "SENS:POW:UNIT {value}", lambda r: r.strip().upper(), one_of("W", "DBM")),
        "wavelength_nm": Control("SENS:CORR:WAV?", "SENS:CORR:WAV {value:g}", float, strict_range(100.0, 25000.0)),
        "auto_range": Control("SENS:POW:RANG:AUTO?", "SENS:POW:RANG:AUTO {value:d}", on_off, flag),
        "range_w": Control("SENS:POW:RANG?", "SENS:POW:RANG {value:g}", float, strict_range(0.0, 100.0)),
        "average_count": Control(
            "SENS:AVER:COUN?", "SENS:AVER:COUN {value:d}", int, lambda v: int(strict_range(1, 100000)(v))
        ),
        "power_w": Control("MEAS:POW?", None, float, doc="one power reading, watts"),
    }

    def __init__(
        self,
        name: str,
        link: Link,
        *,
        wavelength_nm: float | None = None,
        range_w: float | None = None,
        average_count: int = 1,
        wavelength_tolerance_nm: float = 0.5,
        channel: int = 0,
        dialect: Scpi | None = None,
        channel_name: str | None = None,
    ) -> None:
        super().__init__(name, link, dialect)
        self._settings = (wavelength_nm, range_w, int(average_count))
        self._tolerance_nm = wavelength_tolerance_nm
        self.channel = channel
        self.channel_name = channel_name  # the bench's name for the sensor, for messages
        self.average_count = int(average_count)
        self.wavelength_nm = float("nan")

    n_channels = 1

    @property
    def error_where(self) -> str:
        """Every setting and reading is for the one sensor: a refusal names its bench channel."""
        return channel_where(self.where, self.channel, self.channel_name)

    @property
    def integration_time(self) -> float:
        return self.average_count * SAMPLE_TIME_S

    def configure(self) -> None:
        wavelength_nm, range_w, average_count = self._settings
        needed = reading_time_s(average_count)
        if self.link.policy.timeout_s < needed:
            raise InstrumentError(
                f"{self.where}: a reading at average_count {average_count} takes about {needed:g} s, longer "
                f"than the link's timeout_s {self.link.policy.timeout_s:g}"
            )
        self.send("*CLS")
        self.set("unit", "W")
        unit = self.get("unit")
        if unit != "W":
            raise InstrumentError(f"{self.where}: the power unit reads {unit!r} after SENS:POW:UNIT W")
        if wavelength_nm is not None:
            self.set("wavelength_nm", wavelength_nm)
        self.wavelength_nm = float(self.get("wavelength_nm"))
        if wavelength_nm is not None and abs(self.wavelength_nm - wavelength_nm) > self._tolerance_nm:
            raise InstrumentError(
                f"{self.where}: wavelength {wavelength_nm:g} nm was set but the meter uses {self.wavelength_nm:g} nm "
                "(coerced to the sensor's range?): its readings would be corrected for the wrong wavelength"
            )
        log.info("%s: correcting for %g nm", self.where, self.wavelength_nm)
        if range_w is None:
            self.set("auto_range", True)
        else:
            self.set("auto_range", False)
            self.set("range_w", range_w)
        self.set("average_count", average_count)
        self.average_count = int(self.get("average_count"))

    def read(self) -> np.ndarray:
        watts = float(self.get("power_w"))
        if watts >= OVER_RANGE:
            raise OverRange(
                self.where,
                self.channel,
                f"the meter answered {watts:.4g} at {self.wavelength_nm:g} nm, not a power; "
                "the light exceeds its range",
                self.channel_name,
            )
        return np.array([watts])


def build(name: str, spec: DeviceSpec, context: BenchContext) -> ThorlabsPM:
    """Entry point ``thorlabs_pm``; the link's timeout is extended by the reading time of the averaging."""
    options = dict(spec.options)

    def number(key: str) -> float | None:
        return None if options.get(key) is None else float(options[key])

    count = int(options.get("average_count") or 1)
    options["timeout_s"] = float(options.get("timeout_s", RetryPolicy().timeout_s)) + reading_time_s(count)
    spec = spec.model_copy(update={"options": options})
    channel = spec.channels.first if spec.channels is not None else 0
    channel_name = spec.channels.names[0] if spec.channels is not None else None
    link = open_link(name, spec, context)
    meter = ThorlabsPM(
        name,
        link,
        wavelength_nm=number("wavelength_nm"),
        range_w=number("range_w"),
        average_count=count,
        wavelength_tolerance_nm=float(options.get("wavelength_tolerance_nm", 0.5)),
        channel=channel,
        dialect=scpi_dialect(options),
        channel_name=channel_name,
    )
    try:
        return meter.connect()
    except Exception:
        link.close()
        raise
