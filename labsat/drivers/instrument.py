"""Instruments declared as tables, PyMeasure style: one :class:`Control` row per property or command.

A row names the query template, the set template, how a reply is parsed and how a value is
validated before it is sent; :meth:`Instrument.get` and :meth:`Instrument.set` do the rest. A
driver is then a table plus the few lines that map an instrument onto a labsat device protocol,
and every command goes through the same validation, locking, retry and error checks.

How an instrument confirms a setting differs by family and is a :class:`Dialect`: SCPI instruments
answer nothing and keep an error queue (``SYST:ERR?``); Qontrol-style ASCII instruments answer
``OK`` or an error code to every line.

:class:`VoltageOutputs` is the :class:`~labsat.devices.VoltageSource` protocol written once for
every output instrument: it pushes the bench's limits to the instrument at connect time and after
every reconnect, orders per-channel writes so the total output power never overshoots, and after a
failed write reads the outputs back (or marks them unknown) so nobody trusts a stale value. After a
reconnect it writes no output: what a power cycle lost is reported, and the guard decides.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from labsat.benchfile import ChannelLimits, DeviceSpec
from labsat.devices import LostOutputs
from labsat.errors import InstrumentError, LabsatError
from labsat.registry import BenchContext

from .conditions import OutputsLost
from .transport import Link, LinkError, RetryPolicy, Transport, transport_opener

log = logging.getLogger(__name__)

EMULATE_SCHEME = "emulate://"


# -- validators and parsers ------------------------------------------------------------------------


def strict_range(low: float, high: float) -> Callable[[Any], float]:
    """Accept numbers in ``[low, high]``; anything else raises (never silently clamped)."""

    def check(value: Any) -> float:
        number = float(value)
        if not low <= number <= high:
            raise ValueError(f"{number:g} is outside the instrument's range [{low:g}, {high:g}]")
        return number

    return check


def one_of(*allowed: str) -> Callable[[Any], str]:
    """Accept one of ``allowed`` (case-insensitive); returns the spelling the instrument expects."""

    def check(value: Any) -> str:
        for option in allowed:
            if str(value).upper() == option.upper():
                return option
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")

    return check


def flag(value: Any) -> int:
    """Booleans go on the wire as ``1``/``0`` (every SCPI instrument accepts those for ON/OFF)."""
    if isinstance(value, str):
        return int(on_off(value))
    return int(bool(value))


def floats(reply: str) -> list[float]:
    """A comma-separated list of numbers."""
    return [float(part) for part in reply.split(",")]


def floats_of(count: int) -> Callable[[str], list[float]]:
    """Exactly ``count`` comma-separated numbers; a reply with another count is garbled."""

    def parse(reply: str) -> list[float]:
        values = floats(reply)
        if len(values) != count:
            raise ValueError(f"{len(values)} values where {count} were expected in {reply!r}")
        return values

    return parse


def float_array_of(count: int) -> Callable[[str], np.ndarray]:
    """Exactly ``count`` comma-separated numbers as an array, converted in one pass (a scan's readings)."""

    def parse(reply: str) -> np.ndarray:
        values = np.array(reply.split(","), dtype=float)
        if values.size != count:
            raise ValueError(f"{values.size} values where {count} were expected in {reply!r}")
        return values

    return parse


def on_off(reply: str) -> bool:
    """SCPI booleans: ``1``/``0``/``ON``/``OFF``."""
    text = reply.strip().upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    raise ValueError(f"{reply!r} is not a boolean")


def identity_text(reply: str) -> str:
    """An identity: non-empty printable ASCII (IEEE 488.2); anything else is garbled, not another instrument."""
    text = reply.strip()
    if not text or not (text.isascii() and text.isprintable()):
        raise ValueError(f"{reply!r} is not an identity")
    return text


@dataclass(frozen=True)
class Control:
    """One property or command: ``get``/``set`` templates with ``{field}`` placeholders (``{value}``
    is the validated value in ``set``), a reply parser and a validator."""

    get: str | None = None
    set: str | None = None
    parse: Callable[[str], Any] = str
    validate: Callable[[Any], Any] | None = None
    doc: str = ""


# -- dialects --------------------------------------------------------------------------------------


class Dialect(Protocol):
    """How an instrument family confirms a setting and reports errors."""

    def confirm(self, transport: Transport, command: str, where: str) -> None:
        """Send a setting and make sure the instrument took it; raise ``InstrumentError`` if it says no."""
        ...

    def check_reply(self, command: str, reply: str, where: str) -> str:
        """Raise ``InstrumentError`` if ``reply`` is an error report; else return it."""
        ...


@dataclass(frozen=True)
class Scpi:
    """SCPI: settings have no reply; the error queue (``SYST:ERR?``) says whether they were accepted.

    With ``compound`` the error query rides in the setting's own program message (``A 1;:SYST:ERR?``):
    one round trip per confirmed setting instead of two. Instruments or simulators that do not parse
    compound messages (pyvisa-sim) need ``compound=False``.
    """

    error_query: str = "SYST:ERR?"
    compound: bool = True
    max_errors: int = 16

    def confirm(self, transport: Transport, command: str, where: str) -> None:
        if self.compound:
            reply = transport.query(self.message([command, self.error_query]))
        else:
            transport.write(command)
            reply = transport.query(self.error_query)
        self._raise_errors(transport, reply, command, where)

    def ask(self, transport: Transport, query: str, where: str) -> str:
        """A query that the instrument may refuse by not answering (``:READ?`` with the output off).

        A SCPI instrument that cannot execute a query queues an error and sends nothing, so the query
        times out. The error is then read at once and blamed on this query; left in the queue, it would
        be blamed on whichever setting is confirmed next. A timeout with an empty queue stays a
        :class:`LinkError` (worth a retry).
        """
        try:
            return transport.query(query)
        except LinkError:
            reply = transport.query(self.error_query)
            if reply.startswith(("0,", "+0,")):
                raise
            self._raise_errors(transport, reply, query, where)
            raise

    def _raise_errors(self, transport: Transport, reply: str, command: str, where: str) -> None:
        """Read the error queue from its first entry ``reply`` on; raise naming ``command`` if any."""
        errors: list[str] = []
        while not reply.startswith(("0,", "+0,")) and len(errors) < self.max_errors:
            code, _, message = reply.partition(",")
            int(code)  # a queue entry without a number is a garbled reply
            errors.append(f"{code.strip()} {message.strip().strip(chr(34))}")
            reply = transport.query(self.error_query)
        if errors:
            raise InstrumentError(f"{where}: {command!r} was refused: {'; '.join(errors)}")

    def check_reply(self, command: str, reply: str, where: str) -> str:
        return reply

    @staticmethod
    def message(commands: Sequence[str]) -> str:
        """Several commands as one program message (``A 1;:B 2``): one bus transaction."""
        rooted = [c if c.startswith((":", "*")) else f":{c}" for c in commands[1:]]
        return ";".join([commands[0], *rooted])


# -- instruments -----------------------------------------------------------------------------------


class Instrument:
    """An instrument driven through a :class:`Link`, with its commands declared in ``controls``."""

    controls: Mapping[str, Control] = {}  # a class's table; an instance may replace rows it configures
    identity_query: ClassVar[str] = "*IDN?"
    dialect: Dialect = Scpi()

    def __init__(self, name: str, link: Link, dialect: Dialect | None = None) -> None:
        self.name = name
        self.link = link
        self.dialect = dialect or type(self).dialect
        self._identity = ""

    @property
    def where(self) -> str:
        """``name (address)``, the prefix of every error message."""
        return f"{self.name} ({self.link.address})"

    @property
    def error_where(self) -> str:
        """Whom an error the instrument reports (a refusal, an error-queue entry) is about: :attr:`where`,
        and the bench channel for an instrument whose every command is for one channel (or one scan)."""
        return self.where

    def connect(self) -> Self:
        """Open the link, record the identity and configure the instrument."""
        self._identity = self.link.connect(identify=self._ask_identity, restore=self.restore)
        with self.link.lock:
            self.configure()
        return self

    def identity(self) -> str:
        return self._identity

    def configure(self) -> None:
        """Settings the instrument needs at connect time (device-side limits, units, ranges)."""

    def restore(self) -> None:
        """Called after a reconnect, before the failed exchange is repeated: configure again."""
        self.configure()

    def close(self) -> None:
        self.link.close()

    def command(self, control: str, value: Any, **fields: Any) -> str:
        """The validated set command for ``control``; a value the instrument cannot take raises."""
        row = self._row(control, "set")
        if row.validate is not None:
            try:
                value = row.validate(value)
            except ValueError as exc:
                raise InstrumentError(f"{self.where}: {control} = {value!r} refused: {exc}") from None
        assert row.set is not None
        return row.set.format(value=value, **fields)

    def set(self, control: str, value: Any, **fields: Any) -> None:
        self.send(self.command(control, value, **fields))

    def send(self, command: str) -> None:
        """Send one setting message; it is confirmed by the dialect and retried whole on a link failure."""
        self.link.run(command, lambda transport: self.confirm(transport, command))

    def confirm(self, transport: Transport, command: str) -> None:
        """One exchange that sends a setting and makes sure the instrument took it."""
        self.dialect.confirm(transport, command, self.error_where)

    def get(self, control: str, **fields: Any) -> Any:
        row = self._row(control, "get")
        assert row.get is not None
        query = row.get.format(**fields)
        return self.link.query(query, lambda reply: row.parse(self.dialect.check_reply(query, reply, self.error_where)))

    def _ask_identity(self) -> str:
        return self.link.query(
            self.identity_query,
            lambda reply: identity_text(self.dialect.check_reply(self.identity_query, reply, self.where)),
        )

    def _row(self, control: str, mode: str) -> Control:
        row = self.controls.get(control)
        if row is None or getattr(row, mode) is None:
            raise InstrumentError(f"{self.where}: the driver has no {mode} command for {control!r}")
        return row


class VoltageOutputs(Instrument):
    """The VoltageSource protocol for output instruments whose table has a ``voltage`` control.

    ``channels`` are the instrument's channel numbers for positions ``0..n-1``; ``limits`` the bench's
    limits for them, pushed to the instrument by :meth:`apply_limits` at connect and after every
    reconnect. Subclasses with a vector command override :meth:`write_outputs`, and instruments with
    a bulk read :meth:`read_outputs`.

    A reconnect never writes an output. Outputs it finds changed (a power cycle, a hand on the front
    panel) are reported (:meth:`take_lost_outputs`, with the set points they lost) and forgotten as set
    points; a write that a reconnect interrupted this way is not repeated but raises
    :class:`~.conditions.OutputsLost`, since it was planned from outputs that are gone. Whether and how
    the lost values come back is the guard's decision (its ramp, its rules, not while halted).
    """

    resolution_v: ClassVar[float] = 1e-6  # the set commands send 6 decimals

    def __init__(
        self,
        name: str,
        link: Link,
        channels: Sequence[int],
        limits: Sequence[ChannelLimits],
        dialect: Dialect | None = None,
    ) -> None:
        super().__init__(name, link, dialect)
        if len(channels) != len(limits):
            raise ValueError(f"{name}: {len(channels)} channels but {len(limits)} limits")
        self.channels = tuple(channels)
        self.limits = tuple(limits)
        self._last = np.full(len(channels), math.nan)  # what each channel outputs as far as known; NaN = unknown
        self._commanded = np.full(len(channels), math.nan)  # acknowledged set points; NaN: none holds
        self._lost: LostOutputs | None = None  # reported by a reconnect, not yet taken
        self._losses = 0  # reconnects that found outputs lost, ever
        self._write_start = 0  # ``_losses`` when the write in progress began
        self._in_flight = np.full(len(channels), math.nan)  # what the write in progress sends each channel
        self._switching_off = False  # outputs_off: interrupted or not, 0 V is where it goes

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def commanded(self) -> np.ndarray:
        """The set points this driver had acknowledged (NaN where none holds: never set, lost, or a failed write)."""
        return self._commanded.copy()

    def configure(self) -> None:
        self.apply_limits()
        self._last = self.read_outputs()

    def apply_limits(self) -> None:
        """Push device-side limits (vmax/imax, compliance) derived from the bench's limits."""

    def restore(self) -> None:
        """After a reconnect: limits first, then a look at the outputs; none is written.

        An instrument that kept its outputs (a USB glitch) gets no write at all; outputs found elsewhere
        than they were are reported for the guard (:meth:`take_lost_outputs`).
        """
        self.apply_limits()
        before = self._last.copy()
        self._last = self.read_outputs()
        moved = self.departed(self._last, before, self.resolution_v)
        self.report_lost(np.flatnonzero(moved), "found changed after reconnecting (power cycled or changed by hand)")

    def departed(self, present: np.ndarray, reference: np.ndarray, tolerance: float) -> np.ndarray:
        """Channels whose output ``present`` left ``reference`` (where known) by more than ``tolerance``,
        other than towards the value the write in progress sends them (taken, its acknowledgement lost)."""
        sent = np.abs(present - self._in_flight) <= tolerance
        return np.isfinite(reference) & (np.abs(present - reference) > tolerance) & ~sent

    def report_lost(self, positions: np.ndarray, detail: str) -> None:
        """Record outputs a reconnect found lost: their set points go into the report, and out of the cache,
        so that no later command (a whole-module vector, say) sends one of them again behind the guard."""
        positions = np.asarray(positions, dtype=int)
        if not positions.size:
            return
        lost = dict(zip(positions.tolist(), self._commanded[positions].tolist(), strict=True))
        if self._lost is not None:  # not taken yet: the earlier set points are the ones lost
            lost.update(zip(self._lost.positions.tolist(), self._lost.set_points.tolist(), strict=True))
        order = sorted(lost)
        self._lost = LostOutputs(np.array(order, dtype=int), np.array([lost[p] for p in order]), detail)
        self._commanded[positions] = math.nan
        self._losses += 1
        log.warning(
            "%s: outputs of channel %s %s; nothing is written back here",
            self.where,
            ", ".join(str(self.channels[p]) for p in positions),
            detail,
        )

    def take_lost_outputs(self) -> LostOutputs | None:
        lost, self._lost = self._lost, None
        return lost

    def send_output(self, command: str) -> None:
        """Send an output setting, unless a reconnect since the write began found outputs lost.

        The check runs in the exchange itself, so it runs again when the link repeats the exchange after a
        reconnect: a step planned from outputs a power cycle reset would otherwise land as one jump.
        """

        def exchange(transport: Transport) -> None:
            self._refuse_if_lost()
            self.confirm(transport, command)

        self.link.run(command, exchange)

    def _refuse_if_lost(self) -> None:
        if self._losses != self._write_start and not self._switching_off:
            detail = self._lost.detail if self._lost is not None else "found changed after reconnecting"
            raise OutputsLost(self.where, self.channels[0] if self.n_channels == 1 else "*", f"{detail}; not written")

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        positions = np.asarray(positions, dtype=int)
        volts = np.asarray(volts, dtype=float)
        with self.link.lock:
            self._write_start = self._losses
            self._in_flight[positions] = volts
            try:
                self.write_outputs(positions, volts)
            except LabsatError:
                self._resync()
                raise
            finally:
                self._in_flight[:] = math.nan
            self._last[positions] = volts
            self._commanded[positions] = volts

    def read_voltages(self) -> np.ndarray:
        with self.link.lock:
            self._last = self.read_outputs()
            return self._last.copy()

    def outputs_off(self) -> None:
        """Instruments without an off state hold 0 V; the guard has ramped there already."""
        with self.link.lock:
            self._switching_off = True
            try:
                self.write_voltages(np.arange(self.n_channels), np.zeros(self.n_channels))
            finally:
                self._switching_off = False

    def write_outputs(self, positions: np.ndarray, volts: np.ndarray) -> None:
        """One command per channel, in :func:`power_safe_order`, each recorded once acknowledged."""
        order = power_safe_order(self._last[positions], volts)
        commands = [self.command("voltage", volts[i], ch=self.channels[positions[i]]) for i in order]
        for i, command in zip(order, commands, strict=True):
            try:
                self.send_output(command)
            except LabsatError:
                self._commanded[positions[i]] = math.nan  # taken or not: no set point known
                raise
            self._last[positions[i]] = volts[i]
            self._commanded[positions[i]] = volts[i]

    def read_outputs(self) -> np.ndarray:
        return np.array([float(self.get("voltage", ch=ch)) for ch in self.channels])

    def _resync(self) -> None:
        """After a failed write the outputs may be anywhere between old and new: ask the instrument."""
        try:
            self._last = self.read_outputs()
        except LabsatError as exc:
            log.error("%s: outputs unknown after a failed write (%s)", self.where, exc)
            self._last[:] = math.nan


def power_safe_order(start: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Order channel writes so that channels moving towards 0 V go first.

    Output power grows with |V|, so writing the falling channels before the rising ones keeps the
    total power of every intermediate state at or below the larger of the start and the target: a
    write interrupted half-way never leaves the bench above a power budget both ends respect.
    Channels in an unknown state (NaN) count as rising.
    """
    change = np.abs(target) - np.abs(start)
    return np.argsort(np.where(np.isnan(change), np.inf, change), kind="stable")


# -- building drivers from a bench file ------------------------------------------------------------


def open_link(name: str, spec: DeviceSpec, context: BenchContext) -> Link:
    """A link to the instrument at ``spec.address``, with the retry policy from ``spec.options``.

    An ``emulate://`` address starts a wire-level emulator for this device (see
    :mod:`labsat.simulators.emulators`) and connects to wherever it listens; the driver code that
    runs is the same as on hardware.
    """
    if not spec.address:
        raise InstrumentError(f"{name}: driver {spec.driver!r} needs an address")
    address = spec.address
    if address.startswith(EMULATE_SCHEME):
        from labsat.simulators.emulators import serve  # only benches that ask for emulation import it

        address = serve(name, spec, context)
    policy = RetryPolicy.from_options(spec.options)
    return Link(name, address, transport_opener(address, spec.options, policy.timeout_s), policy)


def scpi_dialect(options: Mapping[str, Any], error_query: str = "SYST:ERR?") -> Scpi:
    """The SCPI dialect a bench entry asks for: option ``compound`` (default true), see :class:`Scpi`."""
    return Scpi(error_query=error_query, compound=bool(options.get("compound", True)))


def output_channels(spec: DeviceSpec) -> tuple[list[int], list[ChannelLimits]]:
    """Instrument channel numbers and effective limits of a voltage source's bench entry."""
    assert spec.channels is not None
    return list(spec.channels.instrument_channels), spec.channel_limits_list()
