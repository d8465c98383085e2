"""Keithley 2400-series SMU (2400/2401/2410/2420…) over SCPI, as a 1-channel VoltageSource.

At connect time: source function voltage (``:SOUR:FUNC VOLT``), source range from the bench's
voltage limits (``:SOUR:VOLT:RANG``), current compliance (``:SENS:CURR:PROT``) from
``limits.current_max_ma`` or the option ``compliance_a``, and readings as voltage,current
(``:FORM:ELEM VOLT,CURR``). A write sets ``:SOUR:VOLT:LEV`` and switches the output on (``:OUTP 1``)
if it is off; ``outputs_off`` sets 0 V and ``:OUTP 0``. Every setting is checked with ``:SYST:ERR?``.
:meth:`Keithley24xx.measure` returns one ``:READ?`` as (volts, amps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

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

V_MAX = 210.0  # 2400-series source range
I_MAX = 1.05  # 2400-series compliance range, amps
ERROR_QUERY = ":SYST:ERR?"


class Keithley24xx(VoltageOutputs):
    """One SMU output as a labsat :class:`~labsat.devices.VoltageSource` with one channel."""

    controls: Mapping[str, Control] = {
        "function": Control(":SOUR:FUNC?", ":SOUR:FUNC {value}", str, one_of("VOLT", "CURR")),
        "voltage": Control(":SOUR:VOLT:LEV?", ":SOUR:VOLT:LEV {value:.6f}", float, strict_range(-V_MAX, V_MAX)),
        "voltage_range": Control(":SOUR:VOLT:RANG?", ":SOUR:VOLT:RANG {value:g}", float, strict_range(0.0, V_MAX)),
        "compliance_a": Control(":SENS:CURR:PROT?", ":SENS:CURR:PROT {value:g}", float, strict_range(1e-9, I_MAX)),
        "output": Control(":OUTP?", ":OUTP {value:d}", on_off, flag),
        "elements": Control(":FORM:ELEM?", ":FORM:ELEM {value}"),
        "reading": Control(":READ?", None, floats_of(2), doc="volts, amps"),
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
    ) -> None:
        if len(channels) != 1:
            raise InstrumentError(f"{name}: a Keithley 24xx has one output; the bench gives it {len(channels)}")
        super().__init__(name, link, channels, limits, dialect)
        self.compliance_a = compliance_a

    def apply_limits(self) -> None:
        low, high = self.limits[0].voltage
        self.set("function", "VOLT")
        self.set("voltage_range", max(abs(low), abs(high)))
        self.set("compliance_a", self.compliance_a)
        self.set("elements", "VOLT,CURR")

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        self.set("voltage", volts[0])
        if not self.get("output"):
            self.set("output", True)

    def read_outputs(self) -> np.ndarray:
        """The source level while the output is on; 0 V while it is off."""
        return np.array([float(self.get("voltage")) if self.get("output") else 0.0])

    def outputs_off(self) -> None:
        with self.link.lock:
            self.set("voltage", 0.0)
            self.set("output", False)
            self._last[:] = 0.0

    def measure(self) -> tuple[float, float]:
        """One reading: (volts, amps) at the output."""
        volts, amps = self.get("reading")
        return volts, amps


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
    return Keithley24xx(name, open_link(name, spec, context), channels, limits, float(compliance), dialect).connect()
