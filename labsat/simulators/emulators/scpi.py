"""SCPI instruments, emulated: a small SCPI interpreter, and a DAC and a DAQ in the Keysight style.

The interpreter handles what the drivers (and most SCPI code) rely on: short and long mnemonic
forms in any case (``SOUR``/``SOURce``), optional nodes (``[:LEVel]``), numeric suffixes
(``SOUR2``), compound messages (``A 1;:B 2``), the error queue (``SYST:ERR?`` answering
``0,"No error"`` when empty, ``-113`` for an unknown header, ``-222`` for a value out of range) and
the common commands ``*IDN?``, ``*CLS``, ``*OPC?``.

Models here: :class:`DacEmulator` (a multichannel DAC driving a VoltageSource backend, e.g. a
simulated chip's modulators) and :class:`DaqEmulator` (a multichannel voltage scanner over a Detector
backend, e.g. the chip's balanced detectors). The Keithley SMU is in :mod:`.smu`, the Thorlabs power
meter in :mod:`.powermeter`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from labsat.devices import Detector, VoltageSource

from .wire import LineEmulator

Handler = Callable[[tuple[str, ...], str], str | None]


class ScpiError(Exception):
    """An entry for the error queue: ``(code, message)``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def header_pattern(spec: str) -> re.Pattern[str]:
    """``"SOURce#:VOLTage[:LEVel]?"`` -> a regex for its short and long forms, any case.

    Upper-case letters are the short form, the lower-case rest is optional as a whole; ``[...]``
    is an optional node; ``#`` captures a numeric suffix (empty when omitted).
    """
    parts = [":?"]
    for token in re.findall(r"[A-Za-z]+|.", spec.removeprefix(":")):
        if token == "[":
            parts.append("(?:")
        elif token == "]":
            parts.append(")?")
        elif token == "#":
            parts.append(r"(\d*)")
        elif token.isalpha():
            short = token.rstrip("abcdefghijklmnopqrstuvwxyz")
            rest = token[len(short) :]
            parts.append(short + (f"(?:{rest})?" if rest else ""))
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts), re.IGNORECASE)


def number(argument: str) -> float:
    try:
        return float(argument)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None


def boolean(argument: str) -> bool:
    text = argument.strip().upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    raise ScpiError(-104, "Data type error")


def in_range(value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise ScpiError(-222, "Data out of range")
    return value


def channel_numbers(argument: str) -> list[int]:
    """``(@1:3,5)`` -> ``[1, 2, 3, 5]``."""
    match = re.fullmatch(r"\(@([\d:,\s]+)\)", argument.strip())
    if match is None:
        raise ScpiError(-104, "Data type error")
    channels: list[int] = []
    for item in match.group(1).split(","):
        low, _, high = item.strip().partition(":")
        channels.extend(range(int(low), int(high or low) + 1))
    return channels


class ScpiEmulator(LineEmulator):
    """The interpreter. Subclasses return their command table from :meth:`commands`.

    A table maps a header spec to a handler ``(suffixes, argument) -> reply``; a spec ending in ``?``
    is a query. :meth:`end_of_message` runs after every message, so a model can apply a compound
    message's settings to its backend in one go.
    """

    def __init__(self, identity: str) -> None:
        super().__init__(identity)
        self.errors: deque[tuple[int, str]] = deque(maxlen=32)
        common: dict[str, Handler] = {
            "*IDN?": lambda _s, _a: self.identity,
            "*CLS": lambda _s, _a: self.errors.clear(),
            "*OPC?": lambda _s, _a: "1",
            "SYSTem:ERRor[:NEXT]?": lambda _s, _a: self._next_error(),
        }
        self._table = [(header_pattern(spec), handler) for spec, handler in {**common, **self.commands()}.items()]

    def commands(self) -> Mapping[str, Handler]:
        raise NotImplementedError

    def end_of_message(self) -> None:
        """Hook: the whole message has been interpreted."""

    def handle(self, line: str) -> str | None:
        replies = []
        for unit in line.split(";"):
            header, _, argument = unit.strip().partition(" ")
            if not header:
                continue
            try:
                reply = self._dispatch(header, argument.strip())
            except ScpiError as exc:
                self.errors.append((exc.code, exc.message))
                continue
            if reply is not None:
                replies.append(reply)
        self.end_of_message()
        return ";".join(replies) if replies else None

    def refusal(self, line: str) -> str | None:
        """The settings are refused with ``-300``; the queries of the same message are still answered."""
        self.errors.append((-300, "Device-specific error"))
        queries = [unit for unit in line.split(";") if "?" in unit]
        return self.handle(";".join(queries)) if queries else None

    def is_setting(self, line: str) -> bool:
        return any(unit.strip() and "?" not in unit for unit in line.split(";"))

    def _dispatch(self, header: str, argument: str) -> str | None:
        for pattern, handler in self._table:
            match = pattern.fullmatch(header)
            if match:
                return handler(match.groups(), argument)
        raise ScpiError(-113, "Undefined header")

    def _next_error(self) -> str:
        code, message = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code:+d},"{message}"' if code > 0 else f'{code},"{message}"'


def setting(apply: Callable[[tuple[str, ...], str], Any]) -> Handler:
    """A setting handler: runs ``apply`` for its effect; settings never reply."""

    def handler(suffixes: tuple[str, ...], argument: str) -> None:
        if not argument:
            raise ScpiError(-109, "Missing parameter")
        apply(suffixes, argument)

    return handler


def last_channel_list(argument: str) -> tuple[str, list[int] | None]:
    """``"0.002,(@101:104)"`` -> (``"0.002"``, ``[101, .., 104]``); no list -> (argument, None)."""
    head, at, tail = argument.partition("(@")
    if not at:
        return argument.strip(), None
    return head.strip().rstrip(",").strip(), channel_numbers(at + tail)


class DacEmulator(ScpiEmulator):
    """``SOUR{n}:VOLT`` on channels ``first..first+n-1`` driving ``backend`` positions ``0..n-1``.

    Keysight 33500 conventions: ``SOUR{n}:VOLT:LIM:LOW/HIGH`` store soft limits, but they only act
    once ``SOUR{n}:VOLT:LIM:STAT ON``; then a value outside them is refused with ``-222`` and not
    applied. Each channel has an output relay (``OUTP{n} ON|OFF``, off at power-on): the backend sees
    the level only while the relay is closed, 0 V otherwise. The settings of one message reach the
    backend in one write.
    """

    def __init__(self, backend: VoltageSource, first: int = 1, full_range: tuple[float, float] = (-10.0, 10.0)) -> None:
        self.backend = backend
        self.first = first
        self.full_range = full_range
        n = backend.n_channels
        self.volts = np.asarray(backend.read_voltages(), dtype=float).copy()
        self.output = self.volts != 0.0  # an instrument found outputting has its relays closed
        self.low = np.full(n, full_range[0])
        self.high = np.full(n, full_range[1])
        self.limit_on = np.zeros(n, dtype=bool)
        self._applied = self.volts.copy()
        super().__init__(f"LABSAT,EMU-DAC{n},EMU0001,1.0")

    def commands(self) -> Mapping[str, Handler]:
        level = "SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]"
        return {
            f"{level}?": lambda s, _a: f"{self.volts[self._position(s)]:.6f}",
            level: setting(self._set_level),
            "SOURce#:VOLTage:LIMit:HIGH?": lambda s, _a: f"{self.high[self._position(s)]:.6f}",
            "SOURce#:VOLTage:LIMit:HIGH": setting(lambda s, a: self._set_limit(self.high, s, a)),
            "SOURce#:VOLTage:LIMit:LOW?": lambda s, _a: f"{self.low[self._position(s)]:.6f}",
            "SOURce#:VOLTage:LIMit:LOW": setting(lambda s, a: self._set_limit(self.low, s, a)),
            "SOURce#:VOLTage:LIMit:STATe?": lambda s, _a: str(int(self.limit_on[self._position(s)])),
            "SOURce#:VOLTage:LIMit:STATe": setting(lambda s, a: self._set_flag(self.limit_on, s, a)),
            "OUTPut#[:STATe]?": lambda s, _a: str(int(self.output[self._position(s)])),
            "OUTPut#[:STATe]": setting(lambda s, a: self._set_flag(self.output, s, a)),
        }

    def power_cycle(self) -> None:
        with self.lock:
            self.low[:], self.high[:] = self.full_range
            self.limit_on[:] = False
            self.output[:] = False
            self.volts[:] = 0.0
            self.end_of_message()

    def end_of_message(self) -> None:
        effective = np.where(self.output, self.volts, 0.0)
        changed = np.flatnonzero(effective != self._applied)
        if changed.size:
            self._applied[changed] = effective[changed]
            self.backend.write_voltages(changed, effective[changed])

    def _position(self, suffixes: tuple[str, ...]) -> int:
        position = int(suffixes[0] or self.first) - self.first
        if not 0 <= position < len(self.volts):
            raise ScpiError(-114, "Header suffix out of range")
        return position

    def _set_level(self, suffixes: tuple[str, ...], argument: str) -> None:
        position = self._position(suffixes)
        if self.limit_on[position]:
            low, high = self.low[position], self.high[position]
        else:
            low, high = self.full_range
        self.volts[position] = in_range(number(argument), low, high)

    def _set_limit(self, limits: np.ndarray, suffixes: tuple[str, ...], argument: str) -> None:
        limits[self._position(suffixes)] = in_range(number(argument), *self.full_range)

    def _set_flag(self, flags: np.ndarray, suffixes: tuple[str, ...], argument: str) -> None:
        flags[self._position(suffixes)] = boolean(argument)


DEFAULT_APERTURE_S = 1e-3


class DaqEmulator(ScpiEmulator):
    """A scanning voltmeter (Keysight 34970A/DAQ970A style) over a Detector backend.

    Channels ``first..first+n-1`` are backend positions ``0..n-1``. ``CONF:VOLT:DC (@list)`` defines
    the scan list and returns those channels to their default measurement settings (aperture
    :data:`DEFAULT_APERTURE_S`); ``SENS:VOLT:APER t,(@list)`` sets the aperture per channel;
    ``READ?`` (or ``INIT`` then ``FETC?``) scans the list as configured. ``MEAS:VOLT:DC? (@list)`` is
    ``CONF`` followed by ``READ?``: it answers, but it has reset the apertures on the way.
    """

    def __init__(self, backend: Detector, first: int = 1) -> None:
        self.backend = backend
        self.first = first
        self.aperture = np.full(backend.n_channels, DEFAULT_APERTURE_S)
        self.scan: list[int] | None = None
        self._fetched: str | None = None
        super().__init__(f"LABSAT,EMU-DAQ{backend.n_channels},EMU0001,1.0")

    def commands(self) -> Mapping[str, Handler]:
        return {
            "CONFigure[:VOLTage][:DC]": setting(lambda _s, a: self._configure(a)),
            "MEASure[:VOLTage][:DC]?": lambda _s, a: self._measure(a),
            "READ?": lambda _s, _a: self._scan(),
            "INITiate[:IMMediate]": lambda _s, _a: setattr(self, "_fetched", self._scan()),
            "FETCh?": lambda _s, _a: self._fetch(),
            "[SENSe:]VOLTage[:DC]:APERture?": lambda _s, a: self._aperture_query(a),
            "[SENSe:]VOLTage[:DC]:APERture": setting(lambda _s, a: self._set_aperture(a)),
        }

    def power_cycle(self) -> None:
        with self.lock:
            self.aperture[:] = DEFAULT_APERTURE_S
            self.scan, self._fetched = None, None

    def _positions(self, channels: list[int] | None) -> list[int]:
        positions = list(range(self.backend.n_channels)) if channels is None else [c - self.first for c in channels]
        if not all(0 <= p < self.backend.n_channels for p in positions):
            raise ScpiError(-222, "Data out of range")
        return positions

    def _configure(self, argument: str) -> None:
        _, channels = last_channel_list(argument)
        positions = self._positions(channels)
        self.aperture[positions] = DEFAULT_APERTURE_S
        self.scan = positions

    def _measure(self, argument: str) -> str:
        self._configure(argument)
        return self._scan()

    def _scan(self) -> str:
        if self.scan is None:
            raise ScpiError(-221, "Settings conflict")  # nothing configured to scan
        reading = np.asarray(self.backend.read(), dtype=float)
        return ",".join(f"{reading[p]:.9e}" for p in self.scan)

    def _fetch(self) -> str:
        if self._fetched is None:
            raise ScpiError(-230, "Data corrupt or stale")
        return self._fetched

    def _aperture_query(self, argument: str) -> str:
        _, channels = last_channel_list(argument)
        return ",".join(f"{self.aperture[p]:g}" for p in self._positions(channels))

    def _set_aperture(self, argument: str) -> None:
        value, channels = last_channel_list(argument)
        self.aperture[self._positions(channels)] = in_range(number(value), 1e-6, 10.0)
