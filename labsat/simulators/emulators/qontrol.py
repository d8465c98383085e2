"""A daisy chain of Qontrol output modules (Q8iv, Q8b, Q8a), emulated from the vendor's protocol.

The protocol is the one the vendor's Python library (``qontrol.py``, takeqontrol/api) speaks and the
one a recorded session with two real Q8iv modules shows (``progs/two_q8iv_*.json`` on that
repository's ``virtual-module`` branch), not the one labsat's driver happens to send:

- 115200 baud, 8N1, ``\\n`` line ends; commands are case-insensitive (the vendor library sends
  ``VMAX0?``, the device's own help lists ``vmax[port]?``).
- ``v3=1.5``, ``vmax3=``, ``imax3=`` set; every accepted setting answers ``OK``.
- ``v3?`` and ``i3?`` *measure*: ``+0.2077 V``, ``-0.0036 mA``; successive readings differ in the
  4th decimal (seeded noise), so a read-back is never an echo of the set point. ``vmax3?`` and
  ``imax3?`` answer the limit with its unit (``+12.0000 V``, ``+24.0000 mA``).
- ``vall?``, ``iall?``, ``vmaxall?``, ``imaxall?``: one line per channel of the whole chain;
  ``vipall?``: ``module,channel: +0.2082 V, -0.0037 mA`` per channel (with ``mW`` and ``Ohm``
  fields where current flows); ``idall?``, ``nchanall?``, ``vfullall?``, ``ifullall?``: one line per
  module. ``id?``, ``nchan?``, ``vfull?``, ``ifull?`` answer for the module on the USB port.
- ``vvec3=1.5,2,0.25``: channels 3, 4, 5 in one line, as ``set_all_values`` sends it; a vector
  spanning modules is answered once per module it reaches (one ``OK`` each), as recorded.
- Errors are ``E<code>:<channel>``: ``E01`` over-voltage and ``E02`` over-current (the output is
  clamped to the limit *and* the error sent, so a driver that ignores errors believes a value the
  channel does not hold), ``E10:00`` unrecognised command, ``E11`` parameter, ``E12`` channel,
  ``E13`` forbidden (current-mode settings are not emulated), ``E14:01`` an instruction longer than
  the instruction buffer, ``E14:00`` then ``E15:00`` a line that overflows the input buffer (what
  the recorded modules answered to an 89-character line; 22 characters were fine; the two buffer
  sizes here are assumptions within those bounds), ``E16:00`` a line whose end came more than
  ``line_timeout_s`` after its start (dropped; the vendor library names E16 "command timed out",
  the value of the timeout is an assumption). ``E90:00`` (powered up) arrives unsolicited after a
  power cycle, before any command.

Channels ``first..first+n-1`` of the chain drive ``backend``'s positions ``0..n-1`` (a simulated
chip's heaters), so a heater write here moves the simulated detector readings; other channels of
the chain are outputs with nothing connected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labsat.devices import VoltageSource

from .wire import LineEmulator, SerialSettings

INSTRUCTION_MAX = 64  # characters of one instruction the firmware accepts (E14:01 beyond)
INPUT_BUFFER = 80  # characters the input buffer holds; a longer line overflows it (E14:00, E15:00)
READ_NOISE = 1e-4  # standard deviation of a measurement, in V or mA: the 4th decimal
COMMAND = re.compile(r"([a-z]+?)(\d*|all)([=?])(.*)")
NAMES = ("v", "i", "vmax", "imax", "vvec", "vip", "vfull", "ifull", "nchan", "id")


@dataclass(frozen=True)
class Module:
    """One module of the chain: its model, channel count and full scales (V, mA)."""

    model: str
    channels: int
    v_full: float
    i_full: float


# full scales from the vendor library's DEVICE_PROPERTIES
MODELS = {
    "Q8iv": Module("Q8iv", 8, 12.0, 24.0),
    "Q8b": Module("Q8b", 8, 12.0, 83.333333),
    "Q8bi": Module("Q8bi", 8, 12.0, 100.0),
    "Q8a": Module("Q8a", 8, 12.0, 100.0),
}


def module(spec: str | Mapping[str, Any]) -> Module:
    """A module from a bench file entry: a model name (``Q8iv``) or ``{model: Q8iv, channels: 16}``."""
    if isinstance(spec, str):
        spec = {"model": spec}
    name = str(spec.get("model"))
    if name not in MODELS:
        raise ValueError(f"unknown Qontrol model {name!r} (known: {', '.join(MODELS)})")
    base = MODELS[name]
    channels = int(spec.get("channels", base.channels))
    if channels not in (8, 16):
        raise ValueError(f"a Qontrol module has 8 or 16 channels, not {channels}")
    return Module(name, channels, base.v_full, base.i_full)


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


class QontrolError(Exception):
    """A refusal: its text is the error reply."""


class QontrolEmulator(LineEmulator):
    """A chain of Qontrol modules whose channels ``first..first+n-1`` drive ``backend``'s positions ``0..n-1``.

    ``modules`` defaults to as many Q8iv modules as the channels need.
    """

    serial_settings = SerialSettings(baudrate=115200, bytesize=8, parity="N", stopbits=1)
    line_timeout_s: float | None = 0.5  # a line that stops arriving half-way is dropped with E16:00

    def __init__(
        self,
        backend: VoltageSource,
        resistance_ohm: Sequence[float],
        first: int = 0,
        serial: str = "0001",
        seed: int = 0,
        modules: Sequence[Module] | None = None,
    ) -> None:
        n = backend.n_channels
        if len(resistance_ohm) != n:
            raise ValueError(f"{n} channels but {len(resistance_ohm)} load resistances")
        if modules is None:
            modules = [MODELS["Q8iv"]] * -(-(first + n) // MODELS["Q8iv"].channels)
        self.modules = tuple(modules)
        self.ids = [f"{m.model}-{int(serial) + k:04d}" for k, m in enumerate(self.modules)]
        super().__init__(self.ids[0])
        self.module_of = np.repeat(np.arange(len(self.modules)), [m.channels for m in self.modules])
        total = len(self.module_of)
        if first + n > total:
            raise ValueError(f"channels {first}..{first + n - 1} do not fit a chain of {total} channels")
        self.backend = backend
        self.first = first
        self.v_full = np.array([self.modules[m].v_full for m in self.module_of])
        self.i_full = np.array([self.modules[m].i_full for m in self.module_of])
        self.resistance_ohm = np.full(total, np.inf)
        self.resistance_ohm[first : first + n] = resistance_ohm
        self.volts = np.zeros(total)
        self.volts[first : first + n] = np.asarray(backend.read_voltages(), dtype=float)
        self.vmax = self.v_full.copy()
        self.imax = self.i_full.copy()
        self.rng = np.random.default_rng(seed)
        self._unsolicited: list[str] = []

    @property
    def identity(self) -> str:
        """What ``id?`` answers: the module on the USB port (a test may change it)."""
        return self.ids[0]

    @identity.setter
    def identity(self, value: str) -> None:
        if hasattr(self, "ids"):
            self.ids[0] = value

    # -- the protocol -------------------------------------------------------------------------------

    def handle(self, line: str) -> str | None:
        if len(line) > INPUT_BUFFER:
            return "E14:00\nE15:00"
        if len(line) > INSTRUCTION_MAX:
            return "E14:01"
        match = COMMAND.fullmatch(line.strip().lower())
        try:
            if match is None or match.group(1) not in NAMES:
                raise QontrolError("E10:00")
            name, channel, op, argument = match.groups()
            if op == "?" and argument:
                raise QontrolError("E10:00")
            if channel == "all":
                if op != "?":
                    raise QontrolError("E10:00")
                return "\n".join(self._all(name))
            if name == "vvec" and op == "=":
                return self._set_vector(self._channel(channel), argument)
            if name in ("id", "nchan", "vfull", "ifull") and op == "?":
                return self._module_reply(name, int(self.module_of[self._channel(channel)]) if channel else 0)
            if name in ("v", "i", "vmax", "imax"):
                return self._channel_command(name, self._channel(channel), op, argument)
            raise QontrolError("E10:00")
        except QontrolError as exc:
            return str(exc)

    def refusal(self, line: str) -> str | None:
        match = COMMAND.fullmatch(line.strip().lower())
        channel = int(match.group(2)) if match and match.group(2).isdigit() else 0
        return f"E13:{channel:02d}"

    def power_cycle(self) -> None:
        """The modules restart: outputs at 0, limits at full scale, and ``E90:00`` on the line."""
        with self.lock:
            self.vmax[:] = self.v_full
            self.imax[:] = self.i_full
            self._apply(np.arange(len(self.volts)), np.zeros(len(self.volts)))
            self._unsolicited.append("E90:00")

    def timed_out(self, line: str) -> bytes:
        return b"E16:00\n"

    def take_unsolicited(self) -> bytes:
        if not self._unsolicited:  # the common case, without the lock: the port asks at every byte
            return b""
        with self.lock:
            lines, self._unsolicited = self._unsolicited, []
        return b"".join(line.encode("ascii") + b"\n" for line in lines)

    # -- commands -----------------------------------------------------------------------------------

    def _all(self, name: str) -> list[str]:
        channels = range(len(self.volts))
        if name in ("v", "i", "vmax", "imax"):
            return [self._channel_command(name, ch, "?", "") for ch in channels]
        if name == "vip":
            return [self._vip(ch) for ch in channels]
        if name in ("id", "nchan", "vfull", "ifull"):
            return [self._module_reply(name, m) for m in range(len(self.modules))]
        raise QontrolError("E10:00")

    def _module_reply(self, name: str, index: int) -> str:
        unit = self.modules[index]
        if name == "id":
            return self.ids[index]
        if name == "nchan":
            return str(unit.channels)
        return f"{unit.v_full:+.4f} V" if name == "vfull" else f"{unit.i_full:+.4f} mA"

    def _channel(self, channel: str) -> int:
        if not channel or int(channel) >= len(self.volts):
            raise QontrolError(f"E12:{int(channel or 0):02d}")
        return int(channel)

    def _channel_command(self, name: str, ch: int, op: str, argument: str) -> str:
        if op == "?":
            if name == "v":
                return f"{self._measured(self.volts[ch]):+.4f} V"
            if name == "i":
                return f"{self._measured(self._current_ma(self.volts[ch], ch)):+.4f} mA"
            return f"{self.vmax[ch]:+.4f} V" if name == "vmax" else f"{self.imax[ch]:+.4f} mA"
        if name == "i":  # current-mode setting: not emulated
            raise QontrolError(f"E13:{ch:02d}")
        number = self._number(argument, ch, self.i_full[ch] if name == "imax" else self.v_full[ch])
        if name == "vmax":
            self.vmax[ch] = number
        elif name == "imax":
            self.imax[ch] = number
        else:
            volts, error = self._clamped(number, ch)
            self._apply(np.array([ch]), np.array([volts]))
            return error or "OK"
        return "OK"

    def _vip(self, ch: int) -> str:
        m = int(self.module_of[ch])
        local = ch - int(np.flatnonzero(self.module_of == m)[0])
        volts, current = self._measured(self.volts[ch]), self._measured(self._current_ma(self.volts[ch], ch))
        text = f"{m},{local}: {volts:+.4f} V, {current:+.4f} mA"
        if abs(current) > 0.1:  # the modules add power and load where current flows
            text += f", {volts * current:8.4f} mW, {volts / current * 1e3:6.0f} Ohm"
        return text

    def _set_vector(self, start: int, argument: str) -> str:
        """``vvec``: every value checked (``E11`` at the first bad one), then each clamped at its channel's
        limits as :meth:`_clamped` does, over plain lists: a line holds a module's worth of numbers."""
        parts = argument.split(",")
        end = start + len(parts)
        if end > len(self.volts):
            raise QontrolError(f"E12:{end - 1:02d}")
        values = [_float_or_nan(part) for part in parts]
        for k, (value, full) in enumerate(zip(values, self.v_full[start:end].tolist(), strict=True)):
            if not 0.0 <= value <= full:  # NaN (not a number) fails too
                raise QontrolError(f"E11:{start + k:02d}")
        span = slice(start, end)
        loads = self.resistance_ohm[span].tolist()
        limits = zip(self.vmax[span].tolist(), self.imax[span].tolist(), loads, strict=True)
        settled, errors = [], []
        for k, (value, (vmax, imax, load)) in enumerate(zip(values, limits, strict=True)):
            if value > vmax:
                settled.append(vmax)
                errors.append(f"E01:{start + k:02d}")
            elif value / load * 1e3 > imax:
                settled.append(imax * load / 1e3)
                errors.append(f"E02:{start + k:02d}")
            else:
                settled.append(value)
                errors.append("")
        self._apply(np.arange(start, end), np.array(settled))
        replies: dict[int, list[str]] = {}  # each module answers for its own channels, once
        for m, error in zip(self.module_of[start:end].tolist(), errors, strict=True):
            replies.setdefault(m, [])
            if error:
                replies[m].append(error)
        return "\n".join(line for found in replies.values() for line in found or ["OK"])

    def _number(self, text: str, ch: int, full_scale: float) -> float:
        try:
            number = float(text)
        except ValueError:
            raise QontrolError(f"E11:{ch:02d}") from None
        if not 0.0 <= number <= full_scale:
            raise QontrolError(f"E11:{ch:02d}")
        return number

    def _clamped(self, volts: float, ch: int) -> tuple[float, str | None]:
        """The hardware's behaviour at a limit: clamp, and say so."""
        if volts > self.vmax[ch]:
            return float(self.vmax[ch]), f"E01:{ch:02d}"
        if self._current_ma(volts, ch) > self.imax[ch]:
            return float(self.imax[ch] * self.resistance_ohm[ch] / 1e3), f"E02:{ch:02d}"
        return volts, None

    def _measured(self, value: float) -> float:
        """A reading: the true value plus the ADC's noise."""
        return float(value + self.rng.normal(0.0, READ_NOISE))

    def _current_ma(self, volts: float, ch: int) -> float:
        return float(volts / self.resistance_ohm[ch] * 1e3)

    def _apply(self, channels: np.ndarray, volts: np.ndarray) -> None:
        self.volts[channels] = volts
        wired = (channels >= self.first) & (channels < self.first + self.backend.n_channels)
        if wired.any():
            self.backend.write_voltages(channels[wired] - self.first, volts[wired])
