"""SCPI instruments, emulated: a small SCPI interpreter and four instrument models on top of it.

The interpreter handles what the drivers (and most SCPI code) rely on: short and long mnemonic
forms in any case (``SOUR``/``SOURce``), optional nodes (``[:LEVel]``), numeric suffixes
(``SOUR2``), compound messages (``A 1;:B 2``), the error queue (``SYST:ERR?`` answering
``0,"No error"`` when empty, ``-113`` for an unknown header, ``-222`` for a value out of range) and
the common commands ``*IDN?``, ``*CLS``, ``*OPC?``.

Models: :class:`DacEmulator` (multichannel DAC driving a VoltageSource backend, e.g. a simulated
chip's modulators), :class:`DaqEmulator` (multichannel voltage reader over a Detector backend, e.g.
the chip's balanced detectors), :class:`PowerMeterEmulator` (Thorlabs PM100) and
:class:`SmuEmulator` (Keithley 2400 into a resistive load).
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
        return f'{code},"{message}"'


def setting(apply: Callable[[tuple[str, ...], str], Any]) -> Handler:
    """A setting handler: runs ``apply`` for its effect; settings never reply."""

    def handler(suffixes: tuple[str, ...], argument: str) -> None:
        if not argument:
            raise ScpiError(-109, "Missing parameter")
        apply(suffixes, argument)

    return handler


class DacEmulator(ScpiEmulator):
    """``SOUR{n}:VOLT`` on channels ``first..first+n-1`` driving ``backend`` positions ``0..n-1``.

    Every value must lie within the channel's ``SOUR{n}:VOLT:LIM:LOW/HIGH`` (default: the full range)
    or it is refused with ``-222`` and not applied. The settings of one message reach the backend in
    one write.
    """

    def __init__(self, backend: VoltageSource, first: int = 1, full_range: tuple[float, float] = (-10.0, 10.0)) -> None:
        self.backend = backend
        self.first = first
        self.full_range = full_range
        n = backend.n_channels
        self.volts = np.asarray(backend.read_voltages(), dtype=float).copy()
        self.low = np.full(n, full_range[0])
        self.high = np.full(n, full_range[1])
        self._dirty: set[int] = set()
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
        }

    def power_cycle(self) -> None:
        with self.lock:
            self.low[:], self.high[:] = self.full_range
            self.volts[:] = 0.0
            self._dirty = set(range(len(self.volts)))
            self.end_of_message()

    def end_of_message(self) -> None:
        if self._dirty:
            positions = np.array(sorted(self._dirty))
            self._dirty.clear()
            self.backend.write_voltages(positions, self.volts[positions])

    def _position(self, suffixes: tuple[str, ...]) -> int:
        position = int(suffixes[0] or self.first) - self.first
        if not 0 <= position < len(self.volts):
            raise ScpiError(-114, "Header suffix out of range")
        return position

    def _set_level(self, suffixes: tuple[str, ...], argument: str) -> None:
        position = self._position(suffixes)
        self.volts[position] = in_range(number(argument), self.low[position], self.high[position])
        self._dirty.add(position)

    def _set_limit(self, limits: np.ndarray, suffixes: tuple[str, ...], argument: str) -> None:
        limits[self._position(suffixes)] = in_range(number(argument), *self.full_range)


class DaqEmulator(ScpiEmulator):
    """``MEAS:VOLT? (@list)`` over a Detector backend whose positions ``0..n-1`` are channels ``first..``."""

    def __init__(self, backend: Detector, first: int = 1) -> None:
        self.backend = backend
        self.first = first
        self.aperture = 1e-3
        super().__init__(f"LABSAT,EMU-DAQ{backend.n_channels},EMU0001,1.0")

    def commands(self) -> Mapping[str, Handler]:
        return {
            "MEASure:VOLTage[:DC]?": lambda _s, a: self._measure(a),
            "SENSe:VOLTage[:DC]:APERture?": lambda _s, _a: f"{self.aperture:g}",
            "SENSe:VOLTage[:DC]:APERture": setting(
                lambda _s, a: setattr(self, "aperture", in_range(number(a), 1e-6, 10))
            ),
        }

    def power_cycle(self) -> None:
        with self.lock:
            self.aperture = 1e-3

    def _measure(self, argument: str) -> str:
        positions = [ch - self.first for ch in channel_numbers(argument)]
        if not all(0 <= p < self.backend.n_channels for p in positions):
            raise ScpiError(-222, "Data out of range")
        reading = np.asarray(self.backend.read(), dtype=float)
        return ",".join(f"{reading[p]:.9e}" for p in positions)


class PowerMeterEmulator(ScpiEmulator):
    """A Thorlabs PM100: wavelength correction, range, averaging, and ``MEAS:POW?`` from ``power_w()``."""

    def __init__(self, power_w: Callable[[], float]) -> None:
        self.power_w = power_w
        self.wavelength_nm = 1550.0
        self.auto_range = True
        self.range_w = 0.01
        self.average_count = 1
        super().__init__("Thorlabs,PM100D,P0000001,2.0.0")

    def commands(self) -> Mapping[str, Handler]:
        def store(attribute: str, parse: Callable[[str], Any]) -> Handler:
            return setting(lambda _s, a: setattr(self, attribute, parse(a)))

        return {
            "MEASure[:SCALar]:POWer?": lambda _s, _a: f"{self.power_w():.9e}",
            "SENSe:CORRection:WAVelength?": lambda _s, _a: f"{self.wavelength_nm:g}",
            "SENSe:CORRection:WAVelength": store("wavelength_nm", lambda a: in_range(number(a), 400.0, 1800.0)),
            "SENSe:POWer[:DC]:RANGe:AUTO?": lambda _s, _a: str(int(self.auto_range)),
            "SENSe:POWer[:DC]:RANGe:AUTO": store("auto_range", boolean),
            "SENSe:POWer[:DC]:RANGe[:UPPer]?": lambda _s, _a: f"{self.range_w:g}",
            "SENSe:POWer[:DC]:RANGe[:UPPer]": store("range_w", lambda a: in_range(number(a), 1e-9, 10.0)),
            "SENSe:AVERage[:COUNt]?": lambda _s, _a: str(self.average_count),
            "SENSe:AVERage[:COUNt]": store("average_count", lambda a: int(in_range(number(a), 1, 10000))),
        }

    def power_cycle(self) -> None:
        with self.lock:
            self.wavelength_nm, self.auto_range, self.range_w, self.average_count = 1550.0, True, 0.01, 1


class SmuEmulator(ScpiEmulator):
    """A Keithley 2400 sourcing voltage into ``load_ohm``; current limited by the compliance."""

    def __init__(self, load_ohm: float) -> None:
        self.load_ohm = load_ohm
        self._defaults()
        super().__init__("KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32 Oct 4 2010 14:20:11/A02 /K/J")

    def _defaults(self) -> None:
        self.function = "VOLT"
        self.level = 0.0
        self.voltage_range = 21.0
        self.compliance_a = 105e-6
        self.output = False
        self.elements = "VOLT,CURR,RES,TIME,STAT"

    def commands(self) -> Mapping[str, Handler]:
        def store(attribute: str, parse: Callable[[str], Any]) -> Handler:
            return setting(lambda _s, a: setattr(self, attribute, parse(a)))

        def function(argument: str) -> str:
            name = argument.strip().strip('"').upper()
            if name not in ("VOLT", "VOLTAGE", "CURR", "CURRENT"):
                raise ScpiError(-224, "Illegal parameter value")
            return name[:4]

        level = ":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]"
        protection = ":SENSe:CURRent[:DC]:PROTection[:LEVel]"
        return {
            ":SOURce:FUNCtion[:MODE]?": lambda _s, _a: self.function,
            ":SOURce:FUNCtion[:MODE]": store("function", function),
            f"{level}?": lambda _s, _a: f"{self.level:.6f}",
            level: store("level", lambda a: in_range(number(a), -self.voltage_range, self.voltage_range)),
            ":SOURce:VOLTage:RANGe?": lambda _s, _a: f"{self.voltage_range:g}",
            ":SOURce:VOLTage:RANGe": store("voltage_range", lambda a: in_range(number(a), 0.0, 210.0)),
            f"{protection}?": lambda _s, _a: f"{self.compliance_a:g}",
            protection: store("compliance_a", lambda a: in_range(number(a), 1e-9, 1.05)),
            ":OUTPut[:STATe]?": lambda _s, _a: str(int(self.output)),
            ":OUTPut[:STATe]": store("output", boolean),
            ":FORMat:ELEMents[:SENSe]?": lambda _s, _a: self.elements,
            ":FORMat:ELEMents[:SENSe]": store("elements", lambda a: a.replace(" ", "").upper()),
            ":READ?": lambda _s, _a: self._read(),
        }

    def power_cycle(self) -> None:
        with self.lock:
            self._defaults()

    def output_volts(self) -> float:
        """What the load sees: 0 with the output off, less than the level when in compliance."""
        if not self.output:
            return 0.0
        current = self.level / self.load_ohm
        if abs(current) > self.compliance_a:
            return float(np.sign(current) * self.compliance_a * self.load_ohm)
        return self.level

    def _read(self) -> str:
        if not self.output:
            raise ScpiError(803, "Output disabled")
        volts = self.output_volts()
        values = {"VOLT": volts, "CURR": volts / self.load_ohm, "RES": self.load_ohm, "TIME": 0.0, "STAT": 0.0}
        return ",".join(f"{values[name]:.6e}" for name in self.elements.split(",") if name in values)
