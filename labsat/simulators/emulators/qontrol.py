"""The Qontrol ASCII protocol, spoken by an emulated Q8iv-style heater driver.

Lines (case-insensitive): ``v{ch}={V}``, ``v{ch}?``, ``i{ch}?`` (mA, from the load resistance),
``vmax{ch}=``/``vmax{ch}?``, ``imax{ch}=``/``imax{ch}?``, ``vvec{first}=v0,v1,…``, ``id?``, ``nchan?``.
Settings answer ``OK``. Like the hardware, a setting above ``vmax`` or one drawing more than ``imax``
is clamped to the limit *and* answered with an error (``E01:ch`` over-voltage, ``E02:ch``
over-current), so a driver that ignores errors would believe a value the channel does not hold.
Other errors: ``E10`` unrecognised command, ``E11`` bad parameter, ``E12`` no such channel.

The outputs drive a labsat :class:`~labsat.devices.VoltageSource` backend (a simulated chip's
heaters), so a heater write here moves the simulated detector readings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from labsat.devices import VoltageSource

from .wire import LineEmulator

V_FULL = 12.0  # Q8iv data sheet: 0..12 V
I_FULL = 24.0  # and 0..24 mA per channel
COMMAND = re.compile(r"([a-z]+)(\d*)([=?])(.*)")


class QontrolError(Exception):
    """A refusal: its text is the error reply."""


class QontrolEmulator(LineEmulator):
    """A Qontrol-style driver whose channels ``first..first+n-1`` drive ``backend``'s positions ``0..n-1``."""

    def __init__(
        self, backend: VoltageSource, resistance_ohm: Sequence[float], first: int = 0, serial: str = "0001"
    ) -> None:
        super().__init__(f"Q8iv-{serial}")
        n = backend.n_channels
        if len(resistance_ohm) != n:
            raise ValueError(f"{n} channels but {len(resistance_ohm)} load resistances")
        self.backend = backend
        self.first = first
        self.resistance_ohm = np.asarray(resistance_ohm, dtype=float)
        self.volts = np.asarray(backend.read_voltages(), dtype=float).copy()
        self.vmax = np.full(n, V_FULL)
        self.imax = np.full(n, I_FULL)

    def handle(self, line: str) -> str | None:
        match = COMMAND.fullmatch(line.strip().lower())
        try:
            if match is None:
                raise QontrolError("E10")
            name, channel, op, argument = match.groups()
            if name == "id" and op == "?":
                return self.identity
            if name == "nchan" and op == "?":
                return str(len(self.volts))
            if name == "vvec" and op == "=":
                return self._set_vector(self._position(channel), argument)
            if name in ("v", "i", "vmax", "imax"):
                return self._channel_command(name, self._position(channel), op, argument)
            raise QontrolError("E10")
        except QontrolError as exc:
            return str(exc)

    def refusal(self, line: str) -> str | None:
        match = COMMAND.fullmatch(line.strip().lower())
        channel = int(match.group(2)) if match and match.group(2) else 0
        return f"E13:{channel:02d}"

    def power_cycle(self) -> None:
        with self.lock:
            self.vmax[:] = V_FULL
            self.imax[:] = I_FULL
            self._apply(np.arange(len(self.volts)), np.zeros(len(self.volts)))

    def _position(self, channel: str) -> int:
        if not channel or not 0 <= int(channel) - self.first < len(self.volts):
            raise QontrolError(f"E12:{int(channel or 0):02d}")
        return int(channel) - self.first

    def _channel_command(self, name: str, position: int, op: str, argument: str) -> str:
        if op == "?":
            value = {
                "v": self.volts[position],
                "i": self._current_ma(self.volts[position], position),
                "vmax": self.vmax[position],
                "imax": self.imax[position],
            }[name]
            return f"{value:.6f}"
        number = self._number(argument, position, I_FULL if name == "imax" else V_FULL)
        if name == "vmax":
            self.vmax[position] = number
        elif name == "imax":
            self.imax[position] = number
        elif name == "v":
            volts, error = self._clamped(number, position)
            self._apply(np.array([position]), np.array([volts]))
            return error or "OK"
        else:  # current-mode setting: not emulated
            raise QontrolError(f"E13:{position + self.first:02d}")
        return "OK"

    def _set_vector(self, start: int, argument: str) -> str:
        values = [self._number(part, start + k, V_FULL) for k, part in enumerate(argument.split(","))]
        positions = np.arange(start, start + len(values))
        if positions[-1] >= len(self.volts):
            raise QontrolError(f"E12:{positions[-1] + self.first:02d}")
        settled = [self._clamped(value, int(p)) for value, p in zip(values, positions, strict=True)]
        self._apply(positions, np.array([volts for volts, _ in settled]))
        return next((error for _, error in settled if error), "OK")

    def _number(self, text: str, position: int, full_scale: float) -> float:
        try:
            number = float(text)
        except ValueError:
            raise QontrolError(f"E11:{position + self.first:02d}") from None
        if not 0.0 <= number <= full_scale:
            raise QontrolError(f"E11:{position + self.first:02d}")
        return number

    def _clamped(self, volts: float, position: int) -> tuple[float, str | None]:
        """The hardware's behaviour at a limit: clamp, and say so."""
        channel = position + self.first
        if volts > self.vmax[position]:
            return float(self.vmax[position]), f"E01:{channel:02d}"
        current = self._current_ma(volts, position)
        if current > self.imax[position]:
            return float(self.imax[position] * self.resistance_ohm[position] / 1e3), f"E02:{channel:02d}"
        return volts, None

    def _current_ma(self, volts: float, position: int) -> float:
        return float(volts / self.resistance_ohm[position] * 1e3)

    def _apply(self, positions: np.ndarray, volts: np.ndarray) -> None:
        self.volts[positions] = volts
        self.backend.write_voltages(positions, volts)
