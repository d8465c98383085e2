"""Keithley 2400-series SMU (2400/2401/2410/2420/2425/2430/2440) over SCPI, as a 1-channel VoltageSource.

At connect time, and again after every reconnect, in this order, each setting confirmed with
``:SYST:ERR?`` on its own so an error is blamed on the setting that caused it:

1. ``*CLS``: an error another program left in the queue must not be blamed on labsat's settings;
2. ``:SOUR:FUNC VOLT`` and ``:SOUR:VOLT:RANG`` from the bench's voltage limits;
3. ``:SOUR:VOLT:PROT``, the over-voltage protection: the model's smallest discrete level at or above
   the bench's largest ``|V|`` (a 2400 offers 20, 40, ... 160 V and NONE, so a 5 V bench gets 20 V);
   read back and kept as :attr:`Keithley24xx.ovp_v`;
4. ``:SENS:CURR:PROT``, the current compliance, from ``limits.current_max_ma`` or ``options.compliance_a``;
5. ``:SOUR:CLE:AUTO OFF``: with auto output-off left on, every reading would switch the output off;
6. ``:FORM:ELEM VOLT,CURR,STAT``: a reading is volts, amps and the status word.

A write sets ``:SOUR:VOLT:LEV`` and switches the output on (``:OUTP 1``) if it is off, then takes one
reading: if its status word says compliance (bit 3) or over-voltage protection (bit 4), the output
does not hold the programmed voltage and the write raises :class:`~.conditions.InCompliance`.
``read_voltages`` returns the programmed level while the output holds it, the measured voltage when
it does not, and 0 V while the output is off. ``outputs_off`` sets 0 V and ``:OUTP 0``.

``:READ?`` with the output off answers nothing and queues +803, so :meth:`Keithley24xx.measure`
checks the output first (:class:`~.conditions.OutputOff`), and a ``:READ?`` that goes unanswered has
its error read at once and blamed on it.

After a reconnect that finds the output off (or at another level) where labsat had left it on, the
instrument was power cycled or changed by hand: the driver re-asserts its limits but does not switch
the output on again by itself. It reports the output lost (``take_lost_outputs``), and a write the
reconnect interrupted raises :class:`~.conditions.OutputsLost` instead of going on, so the guard reads
back the real output (0 V) and decides, from there, whether the level comes back.

A 2450/2460/2461/2470 in its native SCPI command set (current limit ``:SOUR:VOLT:ILIM``, no
``:SENS:CURR:PROT``) is refused at connect with a message that says how to switch it to the 2400
command set (``*LANG SCPI2400``), which this driver then drives as a 2400.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

from .conditions import InCompliance, OutputOff, OutputsLost, channel_where
from .instrument import (
    Control,
    Scpi,
    VoltageOutputs,
    flag,
    floats_of,
    on_off,
    one_of,
    open_link,
    output_channels,
    scpi_dialect,
    strict_range,
)
from .transport import Link

log = logging.getLogger(__name__)

V_MAX = 210.0  # 2400-series source range
I_MAX = 1.05  # 2400-series compliance range, amps
ERROR_QUERY = ":SYST:ERR?"
STATUS_COMPLIANCE = 1 << 3  # bits of the reading's status word (2400 manual, :FORM:ELEM STAT)
STATUS_OVP = 1 << 4
OVP_LEVELS = {  # model -> (discrete levels, NONE): the manual's "V-Source protection limit settings"
    "2400": ((20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 160.0), 210.0),
    "2401": ((20.0,), 21.0),
    "2410": ((20.0, 40.0, 100.0, 200.0, 300.0, 400.0, 500.0), 1100.0),
    "2420": ((6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 48.0), 63.0),
    "2425": ((10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0), 105.0),
    "2430": ((10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0), 105.0),
    "2440": ((4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 32.0), 42.0),
}
NATIVE_MODELS = ("2450", "2460", "2461", "2470")  # graphical SMUs with their own SCPI dialect
EMULATION_LANGUAGE = "SCPI2400"


def model_of(identity: str) -> str:
    """``"KEITHLEY INSTRUMENTS INC.,MODEL 2400,..."`` -> ``"2400"`` (empty when there is none)."""
    match = re.search(r"MODEL\s*(\d{4})", identity, re.IGNORECASE)
    return match.group(1) if match else ""


def ovp_setting(model: str, volts: float) -> float:
    """The OVP level to program so that the output can reach ``|volts|`` and not much more.

    A 2400 selects the *lower* level for a value between two, so labsat sends the smallest level at
    or above ``|volts|`` itself; above the highest it sends the model's NONE value.
    """
    levels, none = OVP_LEVELS.get(model, OVP_LEVELS["2400"])
    return next((level for level in levels if level >= abs(volts)), none)


class Keithley24xx(VoltageOutputs):
    """One SMU output as a labsat :class:`~labsat.devices.VoltageSource` with one channel."""

    controls: Mapping[str, Control] = {
        "language": Control("*LANG?", None, str, doc="a 2450's command set"),
        "function": Control(":SOUR:FUNC?", ":SOUR:FUNC {value}", str, one_of("VOLT", "CURR")),
        "voltage": Control(":SOUR:VOLT:LEV?", ":SOUR:VOLT:LEV {value:.6f}", float, strict_range(-V_MAX, V_MAX)),
        "voltage_range": Control(":SOUR:VOLT:RANG?", ":SOUR:VOLT:RANG {value:g}", float, strict_range(0.0, V_MAX)),
        "ovp_v": Control(":SOUR:VOLT:PROT?", ":SOUR:VOLT:PROT {value:g}", float, strict_range(0.0, 1100.0)),
        "compliance_a": Control(":SENS:CURR:PROT?", ":SENS:CURR:PROT {value:g}", float, strict_range(1e-9, I_MAX)),
        "output": Control(":OUTP?", ":OUTP {value:d}", on_off, flag),
        "auto_off": Control(":SOUR:CLE:AUTO?", ":SOUR:CLE:AUTO {value}", on_off, one_of("ON", "OFF")),
        "elements": Control(":FORM:ELEM?", ":FORM:ELEM {value}"),
        "reading": Control(":READ?", None, floats_of(3), doc="volts, amps, status word"),
    }
    dialect = Scpi(error_query=ERROR_QUERY)

    def __init__(
        self,
        name: str,
        link: Link,
        channels: Sequence[int],
        limits: Sequence[ChannelLimits],
        compliance_a: float,
        dialect: Scpi | None = None,
        channel_name: str | None = None,
    ) -> None:
        if len(channels) != 1:
            raise InstrumentError(f"{name}: a Keithley 24xx has one output; the bench gives it {len(channels)}")
        super().__init__(name, link, channels, limits, dialect)
        self.compliance_a = compliance_a
        self.channel_name = channel_name  # the bench's name for the output, for messages
        self.ovp_v = math.nan
        self._scpi = dialect or type(self).dialect
        self._model = ""
        self._expect_on = False  # labsat left the output on

    @property
    def error_where(self) -> str:
        """Every command is for the one output: a refusal names its bench channel."""
        return channel_where(self.where, self.channels[0], self.channel_name)

    # -- settings ----------------------------------------------------------------------------------

    def apply_limits(self) -> None:
        self._check_command_set()
        low, high = self.limits[0].voltage
        largest = max(abs(low), abs(high))
        self.send("*CLS")
        self.set("function", "VOLT")
        self.set("voltage_range", largest)
        self.set("ovp_v", ovp_setting(self._model, largest))
        self.ovp_v = float(self.get("ovp_v"))
        if self.ovp_v < largest:
            raise InstrumentError(
                f"{self.where}: over-voltage protection reads {self.ovp_v:g} V, below the bench's {largest:g} V"
            )
        self.set("compliance_a", self.compliance_a)
        self.set("auto_off", "OFF")
        self.set("elements", "VOLT,CURR,STAT")

    def _check_command_set(self) -> None:
        self._model = model_of(self.identity())
        if self._model in NATIVE_MODELS:
            language = str(self.get("language")).strip().upper()
            if language != EMULATION_LANGUAGE:
                raise InstrumentError(
                    f"{self.where}: a Keithley {self._model} in its {language or 'native'} command set is not "
                    f"supported by driver keithley24xx (it limits current with :SOUR:VOLT:ILIM, not "
                    f":SENS:CURR:PROT); switch it to the 2400 command set (*LANG {EMULATION_LANGUAGE}, "
                    "then restart the instrument)"
                )
            self._model = "2400"

    # -- outputs -----------------------------------------------------------------------------------

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        try:
            self._write_level(float(volts[0]))
        except InstrumentError as exc:
            if not isinstance(exc, OutputsLost):  # (a lost output has had its set point reported already)
                self._commanded[0] = math.nan  # taken or not, limited or not: no set point known
            raise

    def _write_level(self, volts: float) -> None:
        self.send_output(self.command("voltage", volts))
        on = self.get("output")
        self._refuse_if_lost()  # a reconnect on the way found the output lost: it is not switched on
        if not on:
            self.send_output(self.command("output", True))
        self._expect_on = True
        volts_out, amps, status = self._reading()
        self._raise_if_limited(volts, volts_out, amps, status)

    def read_outputs(self) -> np.ndarray:
        """The level while the output holds it; the measured voltage when it does not; 0 V while off."""
        on, present = self._present()
        self._expect_on = on  # an output found on (at connect, say) is one a power cycle can lose
        return np.array([present])

    def _present(self) -> tuple[bool, float]:
        """(output on, what the load sees): 0 V when off, the measured voltage when limited."""
        if not self.get("output"):
            return False, 0.0
        volts_out, _, status = self._reading()
        return True, volts_out if status & (STATUS_COMPLIANCE | STATUS_OVP) else float(self.get("voltage"))

    def outputs_off(self) -> None:
        with self.link.lock:
            self.set("voltage", 0.0)
            self.set("output", False)
            self._expect_on = False
            self._last[:] = 0.0
            self._commanded[:] = 0.0

    def restore(self) -> None:
        """After a reconnect: limits again; the output is never switched on here (see the module doc)."""
        self.apply_limits()
        on, level = self._present()
        expected = float(self._last[0])
        changed = not on or bool(self.departed(np.array([level]), np.array([expected]), self.resolution_v)[0])
        if self._expect_on and changed:
            found = f"{level:g} V" if on else "the output off"
            self.report_lost(
                np.array([0]),
                f"found {found} after reconnecting where it was at {expected:g} V before (power cycled or changed "
                "by hand); the driver does not switch it on again by itself",
            )
            self._expect_on = on
        self._last[:] = level

    # -- readings ----------------------------------------------------------------------------------

    def measure(self) -> tuple[float, float]:
        """One reading: (volts, amps) at the output; an output that is off has none."""
        with self.link.lock:
            if not self.get("output"):
                raise OutputOff(
                    self.where, self.channels[0], "no reading is possible (:READ? would answer +803)", self.channel_name
                )
            volts, amps, _ = self._reading()
            return volts, amps

    def in_compliance(self) -> bool:
        """Whether the output is limited by its compliance or its OVP now (False while it is off)."""
        with self.link.lock:
            return bool(self.get("output")) and bool(self._reading()[2] & (STATUS_COMPLIANCE | STATUS_OVP))

    def _reading(self) -> tuple[float, float, int]:
        """One ``:READ?``; an unanswered one has its queued error blamed on it, not on the next setting."""
        query = self.controls["reading"].get
        assert query is not None
        parse = self.controls["reading"].parse
        volts, amps, status = self.link.run(query, lambda t: parse(self._scpi.ask(t, query, self.error_where)))
        return float(volts), float(amps), int(status)

    def _raise_if_limited(self, programmed: float, volts: float, amps: float, status: int) -> None:
        if status & STATUS_OVP:
            raise InCompliance(
                self.where,
                self.channels[0],
                f"over-voltage protection limits the output at {self.ovp_v:g} V: it is at {volts:g} V, "
                f"not the programmed {programmed:g} V",
                self.channel_name,
            )
        if status & STATUS_COMPLIANCE:
            raise InCompliance(
                self.where,
                self.channels[0],
                f"current limited at {self.compliance_a:g} A ({amps:g} A measured): the output is at "
                f"{volts:g} V, not the programmed {programmed:g} V",
                self.channel_name,
            )


def build(name: str, spec: DeviceSpec, context: BenchContext) -> Keithley24xx:
    """Entry point ``keithley24xx``."""
    channels, limits = output_channels(spec)
    current_ma = limits[0].current_max_ma
    compliance = spec.options.get("compliance_a", None if current_ma is None else current_ma / 1000.0)
    if compliance is None:
        raise InstrumentError(
            f"{name}: a Keithley needs a current compliance: set limits.current_max_ma or options.compliance_a"
        )
    dialect = scpi_dialect(spec.options, ERROR_QUERY)
    link = open_link(name, spec, context)
    assert spec.channels is not None
    smu = Keithley24xx(name, link, channels, limits, float(compliance), dialect, spec.channels.names[0])
    try:
        return smu.connect()
    except Exception:
        link.close()
        raise
