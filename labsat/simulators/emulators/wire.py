"""What every wire-level emulator shares: the line protocol engine interface and the fault switches.

An emulator is an instrument's command interpreter (:meth:`LineEmulator.handle`: one command line
in, one reply line or nothing out) plus :class:`Faults`, switches a test flips to make the
instrument misbehave the way real ones do. The front ends (a pyserial URL handler, a TCP server)
only move bytes: they feed received bytes to a :class:`Session` and send back what it returns,
closing the link when it says so.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

GARBAGE = b"#\xfe?~%0x"  # what a garbled reply looks like: not text, not a number


@dataclass(frozen=True)
class SerialSettings:
    """The UART settings a serial instrument runs at; a port opened otherwise reads noise."""

    baudrate: int
    bytesize: int
    parity: str
    stopbits: float


@dataclass
class Faults:
    """Fault switches. Counters apply to the next N command lines and count themselves down."""

    silent: bool = False
    """The instrument stops answering: commands are swallowed, nothing comes back, the link stays up."""
    hang_after: int | None = None
    """Answer this many more command lines normally, then go ``silent`` (a hang in mid-sequence)."""
    cut: int = 0
    """The link drops in the middle of the next N command lines: nothing is executed."""
    lose_reply: int = 0
    """The next N commands are executed, then the link drops before the reply is sent."""
    garble: int = 0
    """The next N replies arrive as noise."""
    refuse: int = 0
    """The next N settings are refused with the instrument's own error report."""


class LineEmulator:
    """Base of the protocol engines: a lock, the fault switches and the per-line fault logic.

    Subclasses implement :meth:`handle` (the instrument's behaviour) and :meth:`refusal` (how the
    instrument says no to a setting). ``identity`` is what the identity query answers; a test may
    change it to play a different instrument appearing on the same port.
    """

    serial_settings: SerialSettings | None = None  # a serial instrument's UART settings; None: any
    line_timeout_s: float | None = None  # longest a line may take to arrive whole; None: forever

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.faults = Faults()
        self.lock = threading.Lock()
        self.lines = 0

    def handle(self, line: str) -> str | None:
        """Execute one command line; the reply line, or None for commands without one."""
        raise NotImplementedError

    def refusal(self, line: str) -> str | None:
        """Refuse the setting ``line`` the way the instrument does; the reply, if the protocol sends one."""
        raise NotImplementedError

    def is_setting(self, line: str) -> bool:
        """Whether ``line`` changes a setting (only those are refused by ``Faults.refuse``)."""
        return "?" not in line

    def power_cycle(self) -> None:
        """Lose every setting, as after a power cut: outputs at 0, device-side limits at full scale."""
        raise NotImplementedError

    def timed_out(self, line: str) -> bytes:
        """What the instrument answers to a line whose end came after :attr:`line_timeout_s`."""
        return b""

    def take_unsolicited(self) -> bytes:
        """Lines the instrument sent on its own (a power-up notice), for whoever listens now."""
        return b""

    def exchange(self, line: str) -> tuple[bytes, bool]:
        """One received line -> (bytes to send back, whether the link stays up), faults applied."""
        with self.lock:
            self.lines += 1
            faults = self.faults
            if faults.hang_after == 0:
                faults.silent, faults.hang_after = True, None
            elif faults.hang_after is not None:
                faults.hang_after -= 1
            if faults.cut:
                faults.cut -= 1
                return b"", False
            if faults.silent:
                return b"", True
            try:
                if faults.refuse and self.is_setting(line):
                    faults.refuse -= 1
                    reply = self.refusal(line)
                else:
                    reply = self.handle(line)
            except Exception:  # a crash behind the wire (the physics) must show, and must not hang the host
                log.exception("%s: %r crashed the emulated instrument; dropping the link", self.identity, line)
                return b"", False
            if faults.lose_reply:
                faults.lose_reply -= 1
                return b"", False
            if reply is None:
                return b"", True
            if faults.garble:
                faults.garble -= 1
                return GARBAGE + b"\n", True
            return reply.encode("ascii") + b"\n", True


class Session:
    """One connection's view of an emulator: splits the byte stream into lines.

    A line cut off by a dropped link is never executed, as on an instrument that acts on a line only
    once its terminator arrives.
    """

    def __init__(self, emulator: LineEmulator) -> None:
        self.emulator = emulator
        self._pending = b""
        self._started = 0.0  # when the first byte of the pending line arrived

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes from the host -> (bytes to send back, whether the link stays up)."""
        now = time.monotonic()
        if not self._pending:
            self._started = now
        self._pending += data
        out = b""
        while b"\n" in self._pending:
            raw, _, self._pending = self._pending.partition(b"\n")
            line = raw.decode("ascii", errors="replace").strip()
            limit = self.emulator.line_timeout_s
            if limit is not None and now - self._started > limit:
                out += self.emulator.timed_out(line)  # the instrument gave up on the line half-way
                self._started = now
                continue
            self._started = now
            reply, alive = self.emulator.exchange(line)
            out += reply
            if not alive:
                self._pending = b""
                return out, False
        return out, True
