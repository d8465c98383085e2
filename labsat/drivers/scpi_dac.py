"""A generic multichannel SCPI DAC (modulator drivers, bias DACs) in the Keysight style: ``SOUR{n}:VOLT``.

Settings: ``SOUR{n}:VOLT {v}``, read-back ``SOUR{n}:VOLT?``; every setting is checked with
``SYST:ERR?``. A vector write is one SCPI program message (``SOUR1:VOLT 1;:SOUR2:VOLT 2;…``): one
bus transaction and one error check for the whole vector.

At connect and after every reconnect: ``*CLS``, so an error another program left in the queue is
not blamed on labsat's first setting; then device-side limits (the Keysight 33500 spelling):
``SOUR{n}:VOLT:LIM:LOW``/``:HIGH`` from the bench's voltage limits, and ``SOUR{n}:VOLT:LIM:STAT ON``:
without it the instrument stores the limits and ignores them.

The output relay (``OUTP{n} ON|OFF``) is part of a channel's state: a write closes the relay of a
channel whose relay is open, after its level is set (one message); the safe state sets 0 V and opens
every relay; a read-back reports 0 V for a channel whose relay is open, whatever its level.

A vector write the instrument partly refuses is reported with the channels it did not apply, found
by reading every channel back.

Bench options: ``compound`` (default true; false sends one message per channel and asks for errors
in a message of its own, for instruments or simulators that do not parse compound messages),
``device_limits`` (default true; false for a DAC without ``VOLT:LIM``), ``output_relay`` (default
true; false for a DAC without ``OUTP``), the VISA ``visa_library`` and the link's
``timeout_s``/``retries``/``backoff_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.errors import InstrumentError, LabsatError
from labsat.registry import BenchContext

from .conditions import OutputsLost
from .instrument import (
    Control,
    Scpi,
    VoltageOutputs,
    on_off,
    one_of,
    open_link,
    output_channels,
    power_safe_order,
    scpi_dialect,
)
from .transport import Link


class ScpiDac(VoltageOutputs):
    """A multichannel SCPI DAC as a labsat :class:`~labsat.devices.VoltageSource`."""

    controls: Mapping[str, Control] = {
        "voltage": Control("SOUR{ch}:VOLT?", "SOUR{ch}:VOLT {value:.6f}", float, doc="output volts"),
        "limit_high": Control("SOUR{ch}:VOLT:LIM:HIGH?", "SOUR{ch}:VOLT:LIM:HIGH {value:.6f}", float),
        "limit_low": Control("SOUR{ch}:VOLT:LIM:LOW?", "SOUR{ch}:VOLT:LIM:LOW {value:.6f}", float),
        "limit_state": Control(
            "SOUR{ch}:VOLT:LIM:STAT?", "SOUR{ch}:VOLT:LIM:STAT {value}", on_off, one_of("ON", "OFF")
        ),
        "output": Control("OUTP{ch}?", "OUTP{ch} {value}", on_off, one_of("ON", "OFF")),
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
        output_relay: bool = True,
    ) -> None:
        super().__init__(name, link, channels, limits, dialect)
        self.compound = dialect.compound
        self.device_limits = device_limits
        self.output_relay = output_relay
        self._relay = np.zeros(len(channels), dtype=bool)  # closed relays, as last read or written

    def apply_limits(self) -> None:
        """``*CLS`` first (an error someone else left must not fail the connect), then the limits."""
        commands = ["*CLS"]
        if not self.device_limits:
            self._send_all(commands)
            return
        for ch, limit in zip(self.channels, self.limits, strict=True):
            commands += [
                self.command("limit_low", limit.voltage[0], ch=ch),
                self.command("limit_high", limit.voltage[1], ch=ch),
                self.command("limit_state", "ON", ch=ch),
            ]
        self._send_all(commands)

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        order = power_safe_order(self._last[positions], volts)
        commands = [self.command("voltage", volts[i], ch=self.channels[positions[i]]) for i in order]
        opening = [p for p in positions if self.output_relay and not self._relay[p]]
        commands += [self.command("output", "ON", ch=self.channels[p]) for p in opening]
        try:
            self._send_all(commands, output=True)
        except OutputsLost:
            raise  # nothing was refused: a reconnect found the outputs lost and the write was not repeated
        except InstrumentError as exc:
            self._commanded[positions] = math.nan  # taken or not: no set point known
            self._name_refused_channels(exc, positions, volts)
            raise
        self._relay[positions] = self.output_relay

    def read_outputs(self) -> np.ndarray:
        """Each channel's level, or 0 V where its output relay is open."""
        queries = [self.controls["voltage"].get.format(ch=ch) for ch in self.channels]  # type: ignore[union-attr]
        if self.output_relay:
            queries += [self.controls["output"].get.format(ch=ch) for ch in self.channels]  # type: ignore[union-attr]
        replies = self._ask_all(queries)
        n = self.n_channels
        levels = np.array([float(reply) for reply in replies[:n]])
        self._relay = np.array([on_off(reply) for reply in replies[n:]]) if self.output_relay else np.ones(n, bool)
        return np.where(self._relay, levels, 0.0)

    def outputs_off(self) -> None:
        """0 V on every channel, then every output relay open: the safe state of a DAC."""
        with self.link.lock:
            commands = [self.command("voltage", 0.0, ch=ch) for ch in self.channels]
            if self.output_relay:
                commands += [self.command("output", "OFF", ch=ch) for ch in self.channels]
            try:
                self._send_all(commands)
            except LabsatError:
                self._resync()
                raise
            self._relay[:] = False
            self._last[:] = 0.0
            self._commanded[:] = 0.0

    def _name_refused_channels(self, exc: InstrumentError, positions: np.ndarray, volts: np.ndarray) -> None:
        """Re-raise a refusal with the channels that did not take their value, where a read-back tells."""
        try:
            present = self.read_outputs()
        except LabsatError:
            return
        missed = [int(self.channels[p]) for p, v in zip(positions, volts, strict=True) if abs(present[p] - v) > 1e-6]
        if missed:
            raise InstrumentError(f"{exc}; not applied on channel {', '.join(map(str, missed))}") from None

    def _send_all(self, commands: list[str], *, output: bool = False) -> None:
        """``commands`` in one message when compound; ``output`` settings are not repeated after a reconnect
        that found outputs lost (:meth:`~.instrument.VoltageOutputs.send_output`)."""
        send = self.send_output if output else self.send
        if self.compound:
            send(Scpi.message(commands))
        else:
            for command in commands:
                send(command)

    def _ask_all(self, queries: list[str]) -> list[str]:
        """Replies to ``queries``: one program message when compound (replies joined by ``;``)."""
        if not self.compound:
            return [self.link.query(query) for query in queries]

        def parse(reply: str) -> list[str]:
            parts = reply.split(";")
            if len(parts) != len(queries):
                raise ValueError(f"{len(parts)} replies where {len(queries)} were expected in {reply!r}")
            return parts

        message = Scpi.message(queries)
        return self.link.query(message, parse)


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
        output_relay=bool(options.get("output_relay", True)),
    ).connect()
