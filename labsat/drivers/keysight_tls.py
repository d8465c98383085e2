"""Keysight tunable laser sources over SCPI (N7776C/N7778C/N7779C, and 81600B/81960A-series modules in an
8164B mainframe), as a labsat :class:`~labsat.devices.LightSource`.

The commands follow Keysight's programming guides for these instruments ("Keysight N7776C/N7778C/N7779C
Tunable Laser Sources, Programming Guide" and "8163A/B, 8164A/B, 8166A/B Lightwave Multimeter, Lightwave
Measurement System, Lightwave Multichannel System, Programming Guide", section "Tunable Laser Source
commands"); the same headers appear in PyMeasure's ``KeysightN7776C`` driver
(``pymeasure/instruments/keysight/keysightN7776C.py``). ``{n}`` is the source slot (``options.slot``,
default 0: the N777xC itself, or the 8164B's back slot):

- ``SOUR{n}:POW:STAT 0|1`` (and ``?``): the laser output; off is the safe state;
- ``SOUR{n}:POW <value>MW``: the power setpoint with an explicit unit suffix, so the value means milliwatts
  whatever ``SOUR{n}:POW:UNIT`` says;
- ``SOUR{n}:POW:UNIT 0|1`` (dBm | W): the unit of the *replies* to ``SOUR{n}:POW?``; a laser left in dBm
  answers ``0.0`` for 1 mW, so at connect the unit is set to W and read back;
- ``SOUR{n}:WAV <value>NM`` (and ``SOUR{n}:WAV?``, answered in metres; ``SOUR{n}:WAV? MIN|MAX``: the
  module's tuning range);
- every setting is confirmed with ``SYST:ERR?`` (``+0,"No error"``; ``-222,"Data out of range"`` for a
  value the module cannot take; the laser does not switch on while the mainframe's safety ``:LOCK`` is
  engaged).

At connect and after every reconnect: ``*CLS`` (an error another program left must not fail the connect),
the power unit to W (read back), and the module's tuning range, which must cover the bench file's
wavelength limits (otherwise the connect is refused naming both). A reconnect never switches the laser
on: a laser that was power cycled comes back off, and the guard sees that on its next read-back.

Bench options: ``slot`` (default 0), the VISA ``visa_library``, ``compound`` and the link's
``timeout_s``/``retries``/``backoff_s``.
"""

from __future__ import annotations

from collections.abc import Mapping

from labsat.benchfile import DeviceSpec, LightLimits
from labsat.devices import LightState
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

from .instrument import Control, Instrument, Scpi, on_off, open_link, scpi_dialect, strict_range
from .transport import Link

UNIT_DBM, UNIT_WATT = 0, 1


def _power_unit(reply: str) -> int:
    """``SOUR:POW:UNIT?`` answers ``+0`` (dBm) or ``+1`` (W)."""
    unit = int(float(reply))
    if unit not in (UNIT_DBM, UNIT_WATT):
        raise ValueError(f"{reply!r} is not a power unit (0 dBm, 1 W)")
    return unit


class KeysightTLS(Instrument):
    """A Keysight tunable laser source (one slot) as a labsat light source."""

    controls: Mapping[str, Control] = {
        "output": Control("SOUR{slot}:POW:STAT?", "SOUR{slot}:POW:STAT {value:d}", on_off, int, doc="laser on/off"),
        "power_mw": Control(
            "SOUR{slot}:POW?", "SOUR{slot}:POW {value:.6g}MW", float, strict_range(0.0, 1000.0), doc="setpoint"
        ),
        "power_unit": Control("SOUR{slot}:POW:UNIT?", "SOUR{slot}:POW:UNIT {value:d}", _power_unit, int),
        "wavelength_nm": Control(
            "SOUR{slot}:WAV?", "SOUR{slot}:WAV {value:.4f}NM", float, strict_range(100.0, 10000.0), doc="metres back"
        ),
    }

    def __init__(
        self, name: str, link: Link, limits: LightLimits, *, slot: int = 0, dialect: Scpi | None = None
    ) -> None:
        super().__init__(name, link, dialect)
        self.limits = limits
        self.slot = int(slot)
        self.tuning_range_nm = (float("nan"), float("nan"))

    def configure(self) -> None:
        self.send("*CLS")
        self.set("power_unit", UNIT_WATT, slot=self.slot)
        unit = self.get("power_unit", slot=self.slot)
        if unit != UNIT_WATT:
            raise InstrumentError(
                f"{self.where}: the power unit reads {unit} (0 = dBm) after SOUR{self.slot}:POW:UNIT 1"
            )
        low = self.link.query(f"SOUR{self.slot}:WAV? MIN", lambda reply: float(reply) * 1e9)
        high = self.link.query(f"SOUR{self.slot}:WAV? MAX", lambda reply: float(reply) * 1e9)
        self.tuning_range_nm = (low, high)
        wanted = self.limits.wavelength_nm
        if wanted[0] < low - 1e-6 or wanted[1] > high + 1e-6:
            raise InstrumentError(
                f"{self.where}: the bench allows {wanted[0]:g}..{wanted[1]:g} nm but the laser tunes only "
                f"{low:g}..{high:g} nm"
            )

    def set_enabled(self, on: bool) -> None:
        self.set("output", int(bool(on)), slot=self.slot)

    def set_power_mw(self, power_mw: float) -> None:
        self.set("power_mw", power_mw, slot=self.slot)

    def set_wavelength_nm(self, wavelength_nm: float) -> None:
        self.set("wavelength_nm", wavelength_nm, slot=self.slot)

    def read_state(self) -> LightState:
        """Output state, power (W on the wire) and wavelength (m on the wire) in one program message."""
        queries = [f"SOUR{self.slot}:{header}?" for header in ("POW:STAT", "POW", "WAV")]
        if isinstance(self.dialect, Scpi) and not self.dialect.compound:
            replies = [self.link.query(query) for query in queries]
        else:
            replies = self.link.query(Scpi.message(queries), lambda reply: reply.split(";"))
            if len(replies) != 3:
                raise InstrumentError(f"{self.where}: {len(replies)} replies where 3 were expected")
        try:
            return LightState(on_off(replies[0]), float(replies[1]) * 1e3, float(replies[2]) * 1e9)
        except ValueError as exc:
            raise InstrumentError(f"{self.where}: garbled state reply {replies!r}: {exc}") from None


def build(name: str, spec: DeviceSpec, context: BenchContext) -> KeysightTLS:
    """Entry point ``keysight_tls``."""
    if spec.light_limits is None:
        raise InstrumentError(f"{name}: a keysight_tls device needs light_limits")
    link = open_link(name, spec, context)
    laser = KeysightTLS(
        name, link, spec.light_limits, slot=int(spec.options.get("slot", 0)), dialect=scpi_dialect(spec.options)
    )
    try:
        return laser.connect()
    except Exception:
        link.close()
        raise
