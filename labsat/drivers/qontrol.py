"""Qontrol-style multichannel heater driver (Q8iv and kin): ASCII lines over USB serial.

Protocol (vendor guide and the ``qontrol`` library): ``v{ch}={volts}`` and ``i{ch}={mA}`` set,
``v{ch}?``/``i{ch}?`` read, ``vmax{ch}=``/``imax{ch}=`` set the device-side limits, ``vvec{first}=v0,v1,…``
sets a run of channels in one line, ``id?`` names the device. Every setting is answered ``OK``; a
refusal is ``E{code}:{channel}`` (``E01:03``: over-voltage on channel 3), turned here into an
:class:`~labsat.errors.InstrumentError` naming the code and its meaning.

Bench options: ``vector_write`` (default true: use ``vvec``; false for firmware without it),
``baudrate`` (115200), and the link's ``timeout_s``/``retries``/``backoff_s``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

from .instrument import Control, VoltageOutputs, open_link, output_channels, strict_range
from .transport import Link, Transport

V_FULL = 12.0  # Q8iv full scale, volts
I_FULL = 24.0  # Q8iv full scale, milliamps

ERRORS = {
    1: "over-voltage (set value exceeds vmax)",
    2: "over-current (set value exceeds imax)",
    3: "power limit",
    4: "calibration error",
    10: "unrecognised command",
    11: "unrecognised parameter",
    12: "unrecognised channel",
    13: "operation forbidden",
    14: "buffer overflow",
    15: "serial error",
    16: "timeout",
    90: "powered up (the device was reset)",
}
ERROR_REPLY = re.compile(r"[A-Za-z]{1,3}(\d+)(?::(\d+))?")


@dataclass(frozen=True)
class QontrolDialect:
    """Every line is answered: ``OK`` for a setting, a value for a query, ``E<code>:<channel>`` for a refusal."""

    def confirm(self, transport: Transport, command: str, where: str) -> None:
        reply = self.check_reply(command, transport.query(command), where)
        if reply.upper() != "OK":
            raise ValueError(f"expected OK, got {reply!r}")

    def check_reply(self, command: str, reply: str, where: str) -> str:
        match = ERROR_REPLY.fullmatch(reply.strip())
        if match:
            code = int(match.group(1))
            channel = f" on channel {int(match.group(2))}" if match.group(2) else ""
            meaning = ERRORS.get(code, "unknown error code")
            raise InstrumentError(f"{where}: {command!r} was refused: error {code:02d}{channel}, {meaning}")
        return reply


class QontrolDriver(VoltageOutputs):
    """A Qontrol-style heater driver as a labsat :class:`~labsat.devices.VoltageSource`."""

    controls: Mapping[str, Control] = {
        "voltage": Control("v{ch}?", "v{ch}={value:.6f}", float, strict_range(0.0, V_FULL), "output volts"),
        "current": Control("i{ch}?", None, float, doc="output current, mA"),
        "vmax": Control("vmax{ch}?", "vmax{ch}={value:.6f}", float, strict_range(0.0, V_FULL), "device-side V limit"),
        "imax": Control("imax{ch}?", "imax{ch}={value:.6f}", float, strict_range(0.0, I_FULL), "device-side mA limit"),
        "vector": Control(None, "vvec{ch}={value}", doc="volts of channels ch, ch+1, ... in one line"),
    }
    identity_query = "id?"
    dialect = QontrolDialect()

    def __init__(
        self, name: str, link: Link, channels: Sequence[int], limits: Sequence[ChannelLimits], vector_write: bool = True
    ) -> None:
        super().__init__(name, link, channels, limits)
        self.vector_write = vector_write

    def apply_limits(self) -> None:
        """``vmax`` from the voltage range, ``imax`` from ``current_max_ma`` (full scale when unset)."""
        for ch, limit in zip(self.channels, self.limits, strict=True):
            if limit.voltage[0] < 0:
                raise InstrumentError(
                    f"{self.where}: channel {ch} allows {limit.voltage[0]:g} V but a Qontrol output is unipolar"
                )
            self.set("vmax", limit.voltage[1], ch=ch)
            self.set("imax", limit.current_max_ma or I_FULL, ch=ch)

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        """One ``vvec`` line over the span of changed channels, unchanged ones at their present value.

        Falls back to one line per channel when ``vector_write`` is off, for a single channel, or when a
        channel inside the span is in an unknown state (it must not be written blind).
        """
        low, high = int(positions.min()), int(positions.max())
        span = self._last[low : high + 1].copy()
        span[positions - low] = volts
        if not self.vector_write or positions.size == 1 or not np.all(np.isfinite(span)):
            super().write_outputs(positions, volts)
            return
        check = self.controls["voltage"].validate
        assert check is not None
        try:
            values = ",".join(f"{check(v):.6f}" for v in span)
        except ValueError as exc:
            raise InstrumentError(f"{self.where}: vector write refused: {exc}") from None
        self.send(self.command("vector", values, ch=self.channels[low]))

    def read_currents(self) -> np.ndarray:
        """Output currents in mA (the instrument measures them)."""
        return np.array([float(self.get("current", ch=ch)) for ch in self.channels])


def build(name: str, spec: DeviceSpec, context: BenchContext) -> QontrolDriver:
    """Entry point ``qontrol``."""
    channels, limits = output_channels(spec)
    vector_write = bool(spec.options.get("vector_write", True))
    return QontrolDriver(name, open_link(name, spec, context), channels, limits, vector_write).connect()
