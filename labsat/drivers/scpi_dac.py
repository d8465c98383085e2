"""A generic multichannel SCPI DAC (modulator drivers, bias DACs): ``SOUR{n}:VOLT``.

Settings: ``SOUR{n}:VOLT {v}``, read-back ``SOUR{n}:VOLT?``, device-side limits
``SOUR{n}:VOLT:LIM:HIGH``/``:LOW`` (the Keysight 33500 spelling); every setting is checked with
``SYST:ERR?``. A vector write is one SCPI program message (``SOUR1:VOLT 1;:SOUR2:VOLT 2;…``): one
bus transaction and one error check for the whole vector.

Bench options: ``compound`` (default true; false sends one message per channel and asks for errors
in a message of its own, for instruments or simulators that do not parse compound messages),
``device_limits`` (default true; false for a DAC without ``VOLT:LIM``), the VISA ``visa_library`` and
the link's ``timeout_s``/``retries``/``backoff_s``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.registry import BenchContext

from .instrument import Control, Scpi, VoltageOutputs, open_link, output_channels, power_safe_order, scpi_dialect
from .transport import Link


class ScpiDac(VoltageOutputs):
    """A multichannel SCPI DAC as a labsat :class:`~labsat.devices.VoltageSource`."""

    controls: Mapping[str, Control] = {
        "voltage": Control("SOUR{ch}:VOLT?", "SOUR{ch}:VOLT {value:.6f}", float, doc="output volts"),
        "limit_high": Control("SOUR{ch}:VOLT:LIM:HIGH?", "SOUR{ch}:VOLT:LIM:HIGH {value:.6f}", float),
        "limit_low": Control("SOUR{ch}:VOLT:LIM:LOW?", "SOUR{ch}:VOLT:LIM:LOW {value:.6f}", float),
    }

    def __init__(
        self,
        name: str,
        link: Link,
        channels: Sequence[int],
        limits: Sequence[ChannelLimits],
        *,
        dialect: Scpi,
        device_limits: bool = True,
    ) -> None:
        super().__init__(name, link, channels, limits, dialect)
        self.compound = dialect.compound
        self.device_limits = device_limits

    def apply_limits(self) -> None:
        if not self.device_limits:
            return
        commands = []
        for ch, limit in zip(self.channels, self.limits, strict=True):
            commands += [
                self.command("limit_low", limit.voltage[0], ch=ch),
                self.command("limit_high", limit.voltage[1], ch=ch),
            ]
        self._send_all(commands)

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        if not self.compound:
            super().write_outputs(positions, volts)
            return
        order = power_safe_order(self._last[positions], volts)
        self.send(Scpi.message([self.command("voltage", volts[i], ch=self.channels[positions[i]]) for i in order]))

    def _send_all(self, commands: list[str]) -> None:
        if self.compound:
            self.send(Scpi.message(commands))
        else:
            for command in commands:
                self.send(command)


def build(name: str, spec: DeviceSpec, context: BenchContext) -> ScpiDac:
    """Entry point ``scpi_dac``."""
    channels, limits = output_channels(spec)
    options = spec.options
    return ScpiDac(
        name,
        open_link(name, spec, context),
        channels,
        limits,
        dialect=scpi_dialect(options),
        device_limits=bool(options.get("device_limits", True)),
    ).connect()
