"""Qontrol output modules (Q8iv, Q8b, Q8a) on a daisy chain: ASCII lines over a USB serial port.

The protocol is the vendor's (its Python library ``qontrol.py`` and a session recorded with two
real Q8iv modules, both in the takeqontrol/api repository): 115200 baud, 8N1, ``\\n`` line ends,
commands case-insensitive. ``v3=1.5`` sets a channel, ``vvec0=a,b,…`` every channel of one module
(as the vendor library's ``set_all_values`` sends it, one line per module), ``vmax3=``/``imax3=``
the device-side limits. Every accepted setting answers ``OK``; a refusal answers
``E<code>:<channel>`` (:data:`ERRORS`), and ``E90`` (powered up) arrives unsolicited when the
modules restart. Replies carry units (``+0.2077 V``, ``-0.0036 mA``) and are parsed by pattern, as
the vendor library does, never by ``float()`` of the whole line.

What the driver makes of it:

- **Replies matched to commands.** Before each command the lines already waiting are drained
  (logged; an ``E90`` among them means the modules restarted); after it, lines that cannot be the
  reply (an ``OK`` where a voltage is due) are discarded as out of step, and an exchange that stays
  out of step fails and is retried on a fresh link. An error reply is drained of its trailing lines
  (the recorded ``E14:00`` came with ``E15:00``), so a command never reads the previous one's reply.
  ``E15`` (serial error) and ``E16`` (timed out) mean the line reached the modules damaged: it is
  sent again on the same port (:data:`RESENDS` times), as the vendor library does for ``E15``, then
  the link is reopened; every other code is a refusal.
- **The chain from the device.** ``idall?`` (the identity: every module's ID, one line each),
  ``nchanall?`` (channels per module), ``vfullall?``/``ifullall?`` (full scale per module: Q8iv
  12 V/24 mA, Q8b about 83 mA, Q8a 100 mA). A bench range beyond a channel's full scale is refused
  at connect.
- **Device-side limits from the bench.** ``vmax`` is the channel's voltage maximum and ``imax`` its
  ``current_max_ma`` (the full scale when unset), written where ``vmaxall?``/``imaxall?`` show
  another value, at connect and after every reconnect.
- **Commanded apart from measured.** ``v3?`` is a measurement (noise in the 4th decimal), not the set
  point. :attr:`commanded` holds the acknowledged set points; only those ever go back on the wire.
  A whole-module ``vvec`` line is used where several of its channels change and every other channel
  of the module has a commanded value (else the changed channels get ``v{ch}=`` lines): a vector
  write never re-sends a read-back. Numbers go out at 4 decimals, rounded towards zero, so
  rounding never crosses a limit.
  :meth:`read_voltages` reports the set point where the measurement agrees with it within
  ``readback_tolerance_v``, and elsewhere the measurement at that resolution, pulled into the bench
  range when it lies within the tolerance of it (a read-back a hair below 0 V does not block the
  next write).
- **Reconnect and power cycle.** A reconnect re-asserts the limits and writes no output: channels
  whose measurement left their set point (or every set channel, after an ``E90``) are reported lost
  and lose their set point, so no ``vvec`` line carries a stale one; the guard decides whether they
  are ramped back. The rest get no write.

Bench options: ``vector_write`` (default true), ``max_line`` (characters per line, default 64: the
modules overflow on long lines; a ``vvec`` line longer than this goes out as ``v{ch}=`` lines),
``readback_tolerance_v`` (0.01), ``inter_line_timeout_s`` (0.1:
how long to wait for another line of a reply of unknown length), ``baudrate`` (115200), and the
link's ``timeout_s``/``retries``/``backoff_s``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.errors import InstrumentError
from labsat.registry import BenchContext

from .instrument import Control, VoltageOutputs, open_link, output_channels, power_safe_order
from .transport import LineTransport, Link, LinkError, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

# error codes and their meanings: the vendor library's COMMON_ERRORS/Qx_ERRORS and the device's help
ERRORS = {
    0: "unknown error",
    1: "over-voltage",
    2: "over-current",
    3: "power error",
    4: "calibration error",
    5: "output error",
    10: "unrecognised command",
    11: "unrecognised parameter",
    12: "unrecognised channel",
    13: "operation forbidden",
    14: "buffer overflow",
    15: "serial communication error",
    16: "command timed out",
    17: "SPI error",
    18: "ADC error",
    19: "I2C error",
    30: "too many errors, some suppressed",
    31: "firmware trap",
    90: "powered up",
}
SUBCODES = {  # codes whose field after the colon is a sub-code (15:X0, 15:X1), not a channel
    14: {"00": "instruction buffer overflow", "01": "single instruction overflow (the line is too long)"},
    15: {"0": "serial overflow", "1": "serial framing error"},
}
CHANNEL_ERRORS = {1, 2, 11, 12, 13}  # codes whose field after the colon is the channel
# E15 (serial error) and E16 (timed out): the line was garbled or too slow on its way in and not executed.
# The vendor library (qontrol.py 1.1.20, Qontroller._issue_command_receive_response) sends the same command
# again on the same port whenever an E15 arrives, without a bound; it names E16 "Command timed out." in
# COMMON_ERRORS and only raises it where a caller lists it in target_errors. labsat sends both again on the
# same port up to RESENDS times (a setting is absolute, so sending it twice is harmless; a line dropped half-way
# was never executed), then fails the exchange as a link error: the link then reopens the port, with its own
# bounded retries, so neither a noisy cable nor a chain that keeps timing out can hang a caller.
TRANSIENT = {15, 16}
RESENDS = 2
POWERED_UP = 90

ERROR_REPLY = re.compile(r"E(\d+)(?::([0-9A-Za-z]+))?")
VOLTS = re.compile(r"([-+]?\d+(?:\.\d*)?) V")
MILLIAMPS = re.compile(r"([-+]?\d+(?:\.\d*)?) mA")
MODULE_ID = re.compile(r"[A-Za-z]\w*-[0-9A-Fa-f*]+")
COUNT = re.compile(r"\d+")
COMMAND_CHANNEL = re.compile(r"([A-Za-z]+?)(\d+)[=?](.*)")  # v3=1.5, vvec8=a,b,…, i3?
CONTROL_CHARACTERS = "".join(map(chr, range(32)))
_JUNK = CONTROL_CHARACTERS + " "
"""What :func:`clean` strips from both ends: spaces and every control character (line ends included)."""
MAX_SKIPPED = 16  # lines discarded as out of step before an exchange gives up and the link is reset
# The line limit: the vendor library sets none (qontrol.py 1.1.20, QXOutput.set_all_values sends one
# "VVEC{first}=a,b,..." line per module, each value as str() writes it, however long). What bounds it is the
# recorded session with two Q8iv (progs/two_q8iv_4.json, tests/fixtures/qontrol_two_q8iv.json): an 89-character
# "V0=" line of 16 values was answered E14:00 then E15:00, three times out of three, while 21-character lines
# were taken. 64 lies within those bounds and holds one module's vvec at 4 decimals below 10 V
# ("vvec0=" + 8 x "9.9999," less one comma: 61 characters); the exact buffer size is not published.
WIRE_DECIMALS = 4  # volts and mA on the wire: 4 decimals, the modules' 16-bit resolution
RESOLUTION = Decimal(1).scaleb(-WIRE_DECIMALS)


def volts_reply(line: str) -> float:
    """The number of a ``+0.2077 V`` reply; anything else is not a voltage."""
    match = VOLTS.fullmatch(line)
    if match is None:
        raise ValueError(f"{line!r} is not a voltage")
    return float(match.group(1))


def milliamps_reply(line: str) -> float:
    """The number of a ``-0.0036 mA`` reply."""
    match = MILLIAMPS.fullmatch(line)
    if match is None:
        raise ValueError(f"{line!r} is not a current in mA")
    return float(match.group(1))


def module_id(line: str) -> str:
    """A module ID (``Q8iv-0001``, ``Q8iv-****`` for a module without a serial number)."""
    if MODULE_ID.fullmatch(line) is None:
        raise ValueError(f"{line!r} is not a module ID")
    return line


def count_reply(line: str) -> int:
    if COUNT.fullmatch(line) is None:
        raise ValueError(f"{line!r} is not a count")
    return int(line)


def ok_reply(line: str) -> str:
    if line != "OK":
        raise ValueError(f"{line!r} is not OK")
    return line


def wire_number(value: float) -> str:
    """``value`` at the wire's resolution, rounded towards zero (never past a limit), shortest form.

    Cut from the shortest decimal form (``repr``) of the number, which is what exact decimal
    rounding of it gives; only a number ``repr`` writes with an exponent goes through
    :class:`~decimal.Decimal` (every vector write formats a module's worth of numbers).
    """
    text = repr(float(value))
    if "e" in text or "n" in text:  # 1e-05, 1.5e+16, nan, inf
        number = Decimal(text).quantize(RESOLUTION, rounding=ROUND_DOWN).normalize()
        return f"{number:f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction[:WIRE_DECIMALS].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@dataclass(frozen=True)
class Fault:
    """An ``E<code>:<field>`` reply, with what it means."""

    code: int
    field: str | None

    @classmethod
    def parse(cls, line: str) -> Fault | None:
        if not line.startswith("E"):  # the common case, a value or OK, without the pattern
            return None
        match = ERROR_REPLY.fullmatch(line)
        return None if match is None else cls(int(match.group(1)), match.group(2))

    @property
    def channel(self) -> int | None:
        """The chain channel the reply names, for the codes whose field is one."""
        return int(self.field) if self.field is not None and self.code in CHANNEL_ERRORS else None

    def describe(self, names: Mapping[int, str] | None = None) -> str:
        """Code, meaning and channel (with its bench name from ``names`` where it has one)."""
        text = f"E{self.code:02d}" + (f":{self.field}" if self.field is not None else "")
        meaning = ERRORS.get(self.code, "unrecognised error code")
        if self.channel is not None:
            return f"{text}, {meaning} on {channel_text(self.channel, names or {})}"
        subcodes = SUBCODES.get(self.code, {})
        detail = next((what for sub, what in subcodes.items() if (self.field or "").endswith(sub)), None)
        return f"{text}, {meaning}" + (f": {detail}" if detail else "")


def channel_text(channel: int, names: Mapping[int, str]) -> str:
    """``channel 3 (h3)``: the chain channel and, where the bench names it, the bench's name."""
    name = names.get(channel)
    return f"channel {channel}" + (f" ({name})" if name else "")


def command_channels(command: str, names: Mapping[int, str]) -> str | None:
    """The channels a command line is for (``v3=1.5``: channel 3; ``vvec8=a,b``: channels 8 and 9), as text."""
    match = COMMAND_CHANNEL.match(command)
    if match is None:
        return None
    first = int(match.group(2))
    count = len(match.group(3).split(",")) if match.group(1).lower() == "vvec" else 1
    if count == 1:
        return channel_text(first, names)
    return f"channels {first}..{first + count - 1}"


class Garbled(LinkError):
    """``E15``/``E16``: the line reached the modules damaged or late and was not executed; worth sending again."""


class PoweredUp(LinkError):
    """The modules restarted (``E90``): every setting is lost; the link is reset and the outputs restored."""


def clean(line: str) -> str:
    """A reply without its surrounding whitespace and the control characters some replies start with
    (a recorded ``nup0=14`` answered ``\\x06OK``)."""
    return line.strip(_JUNK)


class QontrolDriver(VoltageOutputs):
    """A chain of Qontrol modules as a labsat :class:`~labsat.devices.VoltageSource`."""

    controls: Mapping[str, Control] = {
        "voltage": Control("v{ch}?", "v{ch}={value}", volts_reply, wire_number, "output volts (measured)"),
        "current": Control("i{ch}?", None, milliamps_reply, doc="measured output current, mA"),
        "vmax": Control("vmax{ch}?", "vmax{ch}={value}", volts_reply, wire_number, "device-side V limit"),
        "imax": Control("imax{ch}?", "imax{ch}={value}", milliamps_reply, wire_number, "device-side mA limit"),
        "vector": Control(None, "vvec{ch}={value}", doc="volts of every channel of one module, first channel ch"),
    }
    identity_query = "idall?"

    def __init__(
        self,
        name: str,
        link: Link,
        channels: Sequence[int],
        limits: Sequence[ChannelLimits],
        vector_write: bool = True,
        *,
        max_line: int = 64,
        readback_tolerance_v: float = 0.01,
        inter_line_timeout_s: float = 0.1,
        channel_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, link, channels, limits)
        self.channel_names: dict[int, str] = dict(zip(self.channels, channel_names or (), strict=False))
        self.vector_write = vector_write
        self.max_line = max_line
        self.tolerance_v = readback_tolerance_v
        self.inter_line_timeout_s = inter_line_timeout_s
        self.module_ids: tuple[str, ...] = ()
        self.module_channels: tuple[int, ...] = ()
        self.full_scale_v = np.full(len(self.channels), math.nan)
        self.full_scale_ma = np.full(len(self.channels), math.nan)
        self._low = np.array([limit.voltage[0] for limit in self.limits])
        self._high = np.array([limit.voltage[1] for limit in self.limits])
        self._measured = np.full(len(self.channels), math.nan)  # the latest measurement
        self._power_cycled = False
        self._line_transport: LineTransport | None = None
        self._layout: tuple[tuple[int, ...], list[tuple[int, list[int] | None]]] = ((), [])
        for ch, limit in zip(self.channels, self.limits, strict=True):
            if limit.voltage[0] < 0:
                raise InstrumentError(
                    f"{self.where}: channel {ch} allows {limit.voltage[0]:g} V but a Qontrol output is unipolar"
                )

    @property
    def measured(self) -> np.ndarray:
        """The outputs as last measured (``v?``: the set point plus the ADC's noise)."""
        return self._measured.copy()

    @property
    def chain_channels(self) -> int:
        return sum(self.module_channels)

    # -- the conversation ---------------------------------------------------------------------------

    def confirm(self, transport: Transport, command: str) -> None:
        """One setting, answered ``OK``; an error reply raises :class:`InstrumentError` naming it."""
        self._converse(transport, command, ok_reply, 1)

    def get(self, control: str, **fields: Any) -> Any:
        row = self._row(control, "get")
        assert row.get is not None
        query, parse = row.get.format(**fields), row.parse
        return self.link.run(query, lambda transport: self._converse(transport, query, parse, 1))[0]

    def ask(self, query: str, parse: Callable[[str], T], count: int | None) -> list[T]:
        """The ``count`` reply lines of ``query``, parsed (``None``: as many as come before a pause)."""
        return self.link.run(query, lambda transport: self._converse(transport, query, parse, count))

    def _ask_identity(self) -> str:
        self.module_ids = tuple(self.ask(self.identity_query, module_id, None))
        return ", ".join(self.module_ids)

    def _converse(self, transport: Transport, command: str, parse: Callable[[str], T], count: int | None) -> list[T]:
        port = self._line_transport
        if transport is not port:  # checked once per connection: the check is slow
            if not isinstance(transport, LineTransport):
                kind = type(transport).__name__
                raise InstrumentError(f"{self.where}: a Qontrol needs a serial line transport, not {kind}")
            port = self._line_transport = transport
        assert port is not None
        for resend in range(RESENDS + 1):
            try:
                return self._lines_of(port, command, parse, count)
            except Garbled as exc:
                if resend == RESENDS:
                    raise
                log.warning("%s: sending %r again: %s", self.where, command, exc)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _lines_of(self, port: LineTransport, command: str, parse: Callable[[str], T], count: int | None) -> list[T]:
        """One exchange: stale lines drained, the command written, its reply lines read and parsed."""
        for line in port.drain():
            self._stale(line, command)
        port.write(command)
        replies: list[T] = []
        skipped = 0
        while count is None or len(replies) < count:
            more = count is None and bool(replies)
            try:
                raw = port.read_line(command, self.inter_line_timeout_s if more else None)
            except LinkError:
                if more:
                    break
                raise
            line = clean(raw)
            if not (line.isascii() and line.isprintable()):
                raise LinkError(f"{self.where}: {command!r}: garbled reply {raw!r}")
            fault = Fault.parse(line)
            if fault is not None:
                self._fail(port, command, fault)
            try:
                replies.append(parse(line))
            except ValueError:
                skipped += 1
                log.warning("%s: discarding %r: not a reply to %r (out of step)", self.where, line, command)
                if skipped > MAX_SKIPPED:
                    raise LinkError(f"{self.where}: {command!r}: out of step ({skipped} lines discarded)") from None
        return replies

    def _stale(self, line: str, command: str) -> None:
        """A line that arrived before ``command`` was sent: nobody's reply now."""
        fault = Fault.parse(clean(line))
        if fault is not None and fault.code == POWERED_UP:
            self._power_cycled = True
            raise PoweredUp(f"{self.where}: the modules powered up (E90) before {command!r}: settings lost")
        log.warning("%s: discarding stale line %r before %r", self.where, line, command)

    def _fail(self, transport: LineTransport, command: str, fault: Fault) -> None:
        if fault.code == POWERED_UP:
            self._power_cycled = True
            raise PoweredUp(f"{self.where}: the modules powered up (E90) while {command!r} was sent: settings lost")
        trailing: list[str] = []  # lines the same refusal brings with it (E14:00 came with E15:00)
        try:
            while len(trailing) < MAX_SKIPPED:
                trailing.append(transport.read_line(command, self.inter_line_timeout_s))
        except LinkError:
            pass
        if trailing:
            log.warning("%s: %r also answered %s", self.where, command, trailing)
        if fault.code in TRANSIENT:
            raise Garbled(f"{self.where}: {command!r} arrived garbled: {fault.describe(self.channel_names)}")
        text = fault.describe(self.channel_names)
        if fault.channel is None and (channels := command_channels(command, self.channel_names)) is not None:
            text += f"; the line was for {channels}"  # the reply names none: the command does
        raise InstrumentError(f"{self.where}: {command!r} was refused: {text}")

    # -- connect: the chain, its full scales, the device-side limits --------------------------------

    def configure(self) -> None:
        self.apply_limits()
        self._read_measured()
        self._last = self._present()

    def apply_limits(self) -> None:
        """Read the chain and its full scales, then write ``vmax``/``imax`` where they differ from the bench."""
        modules = len(self.module_ids)
        self.module_channels = tuple(self.ask("nchanall?", count_reply, modules))
        v_full = np.repeat(self.ask("vfullall?", volts_reply, modules), self.module_channels)
        i_full = np.repeat(self.ask("ifullall?", milliamps_reply, modules), self.module_channels)
        total = self.chain_channels
        missing = [ch for ch in self.channels if not 0 <= ch < total]
        if missing:
            raise InstrumentError(
                f"{self.where}: channel {missing[0]} does not exist: the chain has {total} channels"
                f" ({' + '.join(map(str, self.module_channels))})"
            )
        index = np.array(self.channels)
        self.full_scale_v, self.full_scale_ma = v_full[index], i_full[index]
        vmax, imax = self._device_limits()
        present_v = np.array(self.ask("vmaxall?", volts_reply, total))[index]
        present_i = np.array(self.ask("imaxall?", milliamps_reply, total))[index]
        for ch, v, i, pv, pi in zip(self.channels, vmax, imax, present_v, present_i, strict=True):
            if abs(pv - float(v)) >= float(RESOLUTION):
                self.send(f"vmax{ch}={v}")
            if abs(pi - float(i)) >= float(RESOLUTION):
                self.send(f"imax{ch}={i}")

    def _device_limits(self) -> tuple[list[str], list[str]]:
        """``vmax`` and ``imax`` of every channel as sent; a bench limit beyond a full scale is refused."""
        vmax, imax = [], []
        for k, (ch, limit) in enumerate(zip(self.channels, self.limits, strict=True)):
            v_full, i_full = float(self.full_scale_v[k]), float(self.full_scale_ma[k])
            current = limit.current_max_ma or i_full
            if limit.voltage[1] > v_full:
                raise InstrumentError(
                    f"{self.where}: channel {ch} allows up to {limit.voltage[1]:g} V"
                    f" but its full scale (vfull?) is {v_full:g} V"
                )
            if current > i_full:
                raise InstrumentError(
                    f"{self.where}: channel {ch} allows up to {current:g} mA"
                    f" but its full scale (ifull?) is {i_full:g} mA"
                )
            vmax.append(wire_number(limit.voltage[1]))
            imax.append(wire_number(current))
        return vmax, imax

    # -- outputs ------------------------------------------------------------------------------------

    def read_outputs(self) -> np.ndarray:
        """The measured outputs (``vall?``: one line per channel of the chain)."""
        readings = np.array(self.ask("vall?", volts_reply, self.chain_channels))
        return readings[np.array(self.channels)]

    def read_currents(self) -> np.ndarray:
        """Measured output currents in mA (``iall?``)."""
        readings = np.array(self.ask("iall?", milliamps_reply, self.chain_channels))
        return readings[np.array(self.channels)]

    def read_voltages(self) -> np.ndarray:
        with self.link.lock:
            self._read_measured()
            self._last = self._present()
            return self._last.copy()

    def _read_measured(self) -> None:
        self._measured = self.read_outputs()

    def _present(self) -> np.ndarray:
        """The outputs as the guard should see them: the set point where the measurement agrees with
        it, else the measurement at the tolerance's resolution (its noise would only make the guard
        ramp through noise), pulled into the bench range when within the tolerance of it."""
        agree = np.isfinite(self._commanded) & (np.abs(self._measured - self._commanded) <= self.tolerance_v)
        coarse = np.round(self._measured / self.tolerance_v) * self.tolerance_v  # the noise is no information
        near = np.clip(coarse, self._low, self._high)
        measured = np.where(np.abs(near - self._measured) <= self.tolerance_v, near, self._measured)
        return np.where(agree, self._commanded, measured)

    def _resync(self) -> None:
        """After a failed write: the set points not acknowledged are unknown; measure the outputs."""
        try:
            self._read_measured()
            self._last = self._present()
        except InstrumentError as exc:
            log.error("%s: outputs unknown after a failed write (%s)", self.where, exc)
            self._last[:] = math.nan

    def restore(self) -> None:
        """After a reconnect: limits, then the channels that lost their set point are reported, not written.

        After an ``E90`` every channel with a set point other than 0 V lost it; otherwise those whose
        measurement left their set point (or the value last seen) by more than the read-back tolerance.
        """
        power_cycled, self._power_cycled = self._power_cycled, False
        self.apply_limits()
        before = self._last.copy()
        self._read_measured()
        moved = self.departed(self._measured, before, self.tolerance_v)
        if power_cycled:
            nonzero = np.where(self._commanded != 0, self._commanded, np.nan)
            lost = self.departed(self._measured, nonzero, self.tolerance_v) | moved
            detail = "were reset by a power cycle (E90)"
        else:
            lost = self.departed(self._measured, self._commanded, self.tolerance_v) | moved
            detail = "left their set points while the link was down"
        self.report_lost(np.flatnonzero(lost), detail)
        self._last = self._present()

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        self._check_range(np.asarray(positions, dtype=int), np.asarray(volts, dtype=float))
        super().write_voltages(positions, volts)

    def _check_range(self, positions: np.ndarray, volts: np.ndarray) -> None:
        """The bench's range, checked here too: nothing outside it reaches the wire, guard or not."""
        outside = ~((self._low[positions] <= volts) & (volts <= self._high[positions]))  # NaN is outside
        if outside.any():
            k = int(np.argmax(outside))
            p, v = int(positions[k]), float(volts[k])
            raise InstrumentError(
                f"{self.where}: channel {self.channels[p]} = {v:g} V refused: outside the bench range"
                f" [{self._low[p]:g}, {self._high[p]:g}] V"
            )

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        """A whole-module ``vvec`` line where several channels of a module change and its other channels
        have set points, ``v{ch}=`` lines elsewhere; falling lines first (:func:`power_safe_order`), each
        set point recorded once acknowledged."""
        positions = np.asarray(positions, dtype=int)
        volts = np.asarray(volts, dtype=float)
        self._check_range(positions, volts)
        lines = self._lines(positions, volts)
        if not lines:
            return
        offsets = np.cumsum([0, *(len(p) for p, _, _ in lines[:-1])])
        start = np.add.reduceat(np.abs(self._last[np.concatenate([p for p, _, _ in lines])]), offsets)
        end = np.add.reduceat(np.abs(np.concatenate([v for _, v, _ in lines])), offsets)
        for k in power_safe_order(start, end):
            line_positions, line_volts, command = lines[k]
            try:
                self.send_output(command)
            except InstrumentError:
                self._commanded[line_positions] = math.nan  # the module may hold some of it, clamped
                raise
            self._commanded[line_positions] = line_volts
            self._last[line_positions] = line_volts

    def _lines(self, positions: np.ndarray, volts: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, str]]:
        """The command lines of one write: ``(positions, volts, line)`` each."""
        target = dict(zip(positions.tolist(), volts.tolist(), strict=True))
        lines = []
        single = set(target)
        for first, module in self._modules() if self.vector_write else ():
            if module is None or sum(p in target for p in module) < 2:
                continue  # channels that are not this device's (never written), or one change: its own line
            values = [target[p] if p in target else float(self._commanded[p]) for p in module]
            if not all(map(math.isfinite, values)):
                continue  # a channel without a set point: nothing to re-send for it
            command = self.command("vector", ",".join(map(wire_number, values)), ch=first)
            if len(command) <= self.max_line:
                lines.append((np.array(module), np.array(values), command))
                single.difference_update(module)
        for p in sorted(single, key=lambda p: self.channels[p]):
            command = self.command("voltage", target[p], ch=self.channels[p])
            lines.append((np.array([p]), np.array([target[p]]), command))
        return lines

    def _modules(self) -> list[tuple[int, list[int] | None]]:
        """Each module's first chain channel and the positions of its channels (``None`` where some of its
        channels are not this device's), worked out once per chain layout."""
        layout, modules = self._layout
        if layout != self.module_channels:
            position_of = {ch: p for p, ch in enumerate(self.channels)}
            modules, first = [], 0
            for n in self.module_channels:
                found = [position_of.get(ch) for ch in range(first, first + n)]
                modules.append((first, None if None in found else [p for p in found if p is not None]))
                first += n
            self._layout = (self.module_channels, modules)
        return modules


def build(name: str, spec: DeviceSpec, context: BenchContext) -> QontrolDriver:
    """Entry point ``qontrol``."""
    channels, limits = output_channels(spec)
    options = spec.options
    return QontrolDriver(
        name,
        open_link(name, spec, context),
        channels,
        limits,
        bool(options.get("vector_write", True)),
        max_line=int(options.get("max_line", 64)),
        readback_tolerance_v=float(options.get("readback_tolerance_v", 0.01)),
        inter_line_timeout_s=float(options.get("inter_line_timeout_s", 0.1)),
        channel_names=spec.channels.names if spec.channels is not None else None,
    ).connect()
