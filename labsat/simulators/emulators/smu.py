"""A Keithley source-measure unit, emulated as the 2400 manual describes it, into a resistive load.

What it does that a driver has to get right (2400 Series SourceMeter User's Manual, SCPI reference):

- ``:SOUR:VOLT:PROT`` (over-voltage protection) takes only the model's discrete levels (2400: 20,
  40, 60, 80, 100, 120, 160 V, above that NONE = 210 V); a value between two levels selects the
  *lower* one, a value below the lowest selects the lowest. The output never exceeds it, whatever
  the programmed level; the reading's status word then has bit 4 (OVP) set.
- ``:SENS:CURR:PROT`` is the current compliance: the output voltage drops until the current is at
  the compliance, no longer the programmed level; status bit 3 (compliance) and
  ``:SENS:CURR:PROT:TRIP?`` say so.
- ``:READ?`` with the output off answers *nothing* and queues +803 "Not permitted with OUTPUT off".
- With auto output-off (``:SOUR:CLE:AUTO ON``) a reading switches the output on for the measurement
  and off after it, so the output is off between readings.
- The source range rounds up to the next range (0.2, 2, 20, 200 V, each with 5 % over-range).
- A power cycle restores the power-on defaults: output off, 0 V, OVP NONE, compliance 105 µA.

A 2450 in its native SCPI command set (``*LANG SCPI``, its factory default) speaks another dialect:
the current limit is ``:SOUR:VOLT:ILIM`` and the 2400's ``:SENS:CURR:PROT`` and ``:FORM:ELEM`` are
undefined headers (-113). With ``*LANG SCPI2400`` it accepts the 2400 command set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .scpi import Handler, ScpiEmulator, ScpiError, boolean, in_range, number, setting

OVP_LEVELS = {  # model -> (discrete levels, NONE); from the manual's "V-Source protection limit settings"
    "2400": ((20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 160.0), 210.0),
    "2401": ((20.0,), 21.0),
    "2410": ((20.0, 40.0, 100.0, 200.0, 300.0, 400.0, 500.0), 1100.0),
    "2420": ((6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 48.0), 63.0),
    "2425": ((10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0), 105.0),
    "2430": ((10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0), 105.0),
    "2440": ((4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 32.0), 42.0),
}
SOURCE_RANGES = (0.21, 2.1, 21.0, 210.0)
DEFAULT_COMPLIANCE_A = 105e-6
STATUS_COMPLIANCE = 1 << 3
STATUS_OVP = 1 << 4
STATUS_V_SOURCE = 1 << 14
IDENTITIES = {
    "2400": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32 Oct 4 2010 14:20:11/A02 /K/J",
    "2450": "KEITHLEY INSTRUMENTS INC.,MODEL 2450,04000002,1.6.7c",
}


def ovp_level(levels: tuple[float, ...], none: float, value: float) -> float:
    """The OVP level a 2400 selects for ``value``: the highest level not above it (the lowest at least)."""
    magnitude = abs(value)
    if magnitude > levels[-1]:
        return none
    below = [level for level in levels if level <= magnitude]
    return below[-1] if below else levels[0]


class SmuEmulator(ScpiEmulator):
    """A Keithley 24xx sourcing voltage into ``load_ohm``.

    ``model`` is ``"2400"`` (or another 24xx of :data:`OVP_LEVELS`) or ``"2450"``; ``command_set`` is
    what ``*LANG?`` answers on a 2450 (``"SCPI"``: native, ``"SCPI2400"``: the 2400 command set).
    """

    def __init__(self, load_ohm: float, model: str = "2400", command_set: str = "SCPI2400") -> None:
        self.load_ohm = load_ohm
        self.model = model
        self.command_set = command_set if model == "2450" else "SCPI2400"
        self.ovp_levels = OVP_LEVELS.get(model, OVP_LEVELS["2400"])
        self._defaults()
        super().__init__(IDENTITIES.get(model, IDENTITIES["2400"].replace("2400", model)))

    def _defaults(self) -> None:
        self.function = "VOLT"
        self.level = 0.0
        self.voltage_range = 21.0
        self.ovp_v = self.ovp_levels[1]
        self.compliance_a = DEFAULT_COMPLIANCE_A
        self.output = False
        self.elements = "VOLT,CURR,RES,TIME,STAT"
        self.auto_off = False

    def power_cycle(self) -> None:
        with self.lock:
            self._defaults()
            self.errors.clear()

    # -- the command table -------------------------------------------------------------------------

    def commands(self) -> Mapping[str, Handler]:
        def store(attribute: str, parse: Callable[[str], Any]) -> Handler:
            return setting(lambda _s, a: setattr(self, attribute, parse(a)))

        level = ":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]"
        table: dict[str, Handler] = {
            "*LANG?": lambda _s, _a: self.command_set,
            ":SOURce:FUNCtion[:MODE]?": lambda _s, _a: self.function,
            ":SOURce:FUNCtion[:MODE]": store("function", self._function),
            f"{level}?": lambda _s, _a: f"{self.level:.6f}",
            level: store("level", lambda a: in_range(number(a), -self.voltage_range, self.voltage_range)),
            ":SOURce:VOLTage:RANGe?": lambda _s, _a: f"{self.voltage_range:g}",
            ":SOURce:VOLTage:RANGe": store("voltage_range", self._source_range),
            ":OUTPut[:STATe]?": lambda _s, _a: str(int(self.output)),
            ":OUTPut[:STATe]": store("output", boolean),
            ":SOURce:CLEar:AUTO?": lambda _s, _a: str(int(self.auto_off)),
            ":SOURce:CLEar:AUTO": store("auto_off", boolean),
            ":READ?": lambda _s, _a: self._read(),
        }
        if self.command_set == "SCPI":  # a 2450's own dialect
            ilimit = ":SOURce:VOLTage:ILIMit[:LEVel]"
            table[f"{ilimit}?"] = lambda _s, _a: f"{self.compliance_a:g}"
            table[ilimit] = store("compliance_a", lambda a: in_range(number(a), 1e-9, 1.05))
            return table
        protection = ":SENSe:CURRent[:DC]:PROTection[:LEVel]"
        ovp = ":SOURce:VOLTage:PROTection[:LEVel]"
        table.update(
            {
                f"{ovp}?": lambda _s, _a: f"{self.ovp_v:g}",
                ":SOURce:VOLTage:PROTection:LIMit?": lambda _s, _a: f"{self.ovp_v:g}",
                ovp: store("ovp_v", lambda a: ovp_level(*self.ovp_levels, in_range(number(a), -1e4, 1e4))),
                f"{protection}?": lambda _s, _a: f"{self.compliance_a:g}",
                protection: store("compliance_a", lambda a: in_range(number(a), 1e-9, 1.05)),
                ":SENSe:CURRent[:DC]:PROTection:TRIPped?": lambda _s, _a: str(int(self.in_compliance())),
                ":FORMat:ELEMents[:SENSe]?": lambda _s, _a: self.elements,
                ":FORMat:ELEMents[:SENSe]": store("elements", lambda a: a.replace(" ", "").upper()),
            }
        )
        return table

    @staticmethod
    def _function(argument: str) -> str:
        name = argument.strip().strip('"').upper()
        if name not in ("VOLT", "VOLTAGE", "CURR", "CURRENT"):
            raise ScpiError(-224, "Illegal parameter value")
        return name[:4]

    @staticmethod
    def _source_range(argument: str) -> float:
        wanted = abs(in_range(number(argument), -210.0, 210.0))
        return next(r for r in SOURCE_RANGES if wanted <= r)

    # -- the physics -------------------------------------------------------------------------------

    def _limited(self) -> tuple[float, int]:
        """(volts at the load, status bits) with the output on."""
        volts, status = self.level, STATUS_V_SOURCE
        if abs(volts) > self.ovp_v:
            volts, status = math.copysign(self.ovp_v, volts), status | STATUS_OVP
        if abs(volts / self.load_ohm) > self.compliance_a:
            volts, status = math.copysign(self.compliance_a * self.load_ohm, volts), status | STATUS_COMPLIANCE
        return volts, status

    def output_volts(self) -> float:
        """What the load sees: 0 with the output off, less than the level when OVP or compliance limit it."""
        return self._limited()[0] if self.output else 0.0

    def in_compliance(self) -> bool:
        return self.output and bool(self._limited()[1] & STATUS_COMPLIANCE)

    def _read(self) -> str:
        if self.auto_off:
            self.output = True  # on for this measurement only
        if not self.output:
            raise ScpiError(803, "Not permitted with OUTPUT off")  # and nothing is sent back
        volts, status = self._limited()
        if self.auto_off:
            self.output = False
        if self.command_set == "SCPI":
            return f"{volts / self.load_ohm:.6e}"  # a 2450 reads the measure function only
        values = {
            "VOLT": volts,
            "CURR": volts / self.load_ohm,
            "RES": self.load_ohm,
            "TIME": 0.0,
            "STAT": float(status),
        }
        return ",".join(f"{values[name]:.6e}" for name in self.elements.split(",") if name in values)
