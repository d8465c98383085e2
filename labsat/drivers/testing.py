"""Protocol tests for drivers, PyMeasure style: replay an exact conversation, fail on any deviation.

A driver test lists the command/reply pairs the instrument would see (reply ``None`` for a command
that gets none; lines separated by ``\\n`` for a reply of several lines), runs the driver against
:func:`expected_protocol`, and checks that every pair was used, in order, and every reply line read.
No hardware, no emulator, no timing: the test pins down the bytes a driver sends, which is what
breaks a real instrument when it changes. Usable for a lab's own drivers too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .transport import Link, LinkError, RetryPolicy

Pair = tuple[str, str | None]


class _PlayedLines:
    """The instrument's side of a played line transport: reply lines wait in ``unread`` until read.

    It survives a reconnect (``close`` does nothing): the same script or recording goes on.
    """

    address = "played"
    source = "the script"

    def __init__(self) -> None:
        self.unread: list[str] = []

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        """The next waiting line; none waiting is a timeout, at once."""
        if not self.unread:
            raise LinkError(f"{self.address}: no reply to {command!r} ({self.source} has no more)")
        return self.unread.pop(0)

    def drain(self) -> list[str]:
        lines, self.unread = self.unread, []
        return lines

    def close(self) -> None:
        """The conversation survives a reconnect."""


class ScriptedTransport(_PlayedLines):
    """A transport that plays the instrument's side of a fixed conversation.

    It is also a :class:`~labsat.drivers.transport.LineTransport`: a reply written in response to
    :meth:`write` waits, line by line, for :meth:`read_line`; lines a driver leaves unread are what
    :meth:`drain` finds before the next command (stale lines).
    """

    address = "scripted"

    def __init__(self, pairs: Sequence[Pair]) -> None:
        super().__init__()
        self.pending = list(pairs)

    def write(self, command: str) -> None:
        """Send ``command``; a reply the script gives it waits for :meth:`read_line`."""
        reply = self._next(command, wants_reply=bool(self.pending) and self.pending[0][1] is not None)
        if reply is not None:
            self.unread += reply.split("\n")

    def query(self, command: str) -> str:
        reply = self._next(command, wants_reply=True)
        assert reply is not None
        return reply

    def _next(self, command: str, *, wants_reply: bool) -> str | None:
        if not self.pending:
            raise AssertionError(f"unexpected command {command!r}: the conversation is over")
        expected, reply = self.pending.pop(0)
        if command != expected:
            raise AssertionError(f"sent {command!r}, expected {expected!r}")
        if wants_reply != (reply is not None):
            kind = "a query" if wants_reply else "a write"
            raise AssertionError(f"{command!r} was sent as {kind}, the script says otherwise")
        return reply


@contextmanager
def expected_protocol(pairs: Sequence[Pair], name: str = "dut", retries: int = 0) -> Iterator[Link]:
    """A :class:`Link` over a :class:`ScriptedTransport`; on exit every pair must have been used."""
    transport = ScriptedTransport(pairs)
    yield Link(name, transport.address, lambda: transport, RetryPolicy(timeout_s=0.1, retries=retries, backoff_s=0.0))
    assert not transport.pending, f"never sent: {transport.pending}"
    assert not transport.unread, f"reply lines never read: {transport.unread}"


SETTING = re.compile(r"(?P<header>[^=]*=)(?P<values>.*)")


class ReplayTransport(_PlayedLines):
    """A line transport that answers as a recorded instrument did: a program in the format of the
    Qontrol vendor's ``virtual_module.py`` (``{"initial_out": [...], "data": [{"cmd", "entries"}]}``).

    The k-th call of a command gets the recording's k-th reply to it (cycling, as the vendor's
    virtual module does); ``initial_out`` is waiting when the port opens. Commands match
    case-insensitively (the firmware reads them so). A setting matches a recorded one with the same
    header whose numbers agree within ``resolution`` (the recording may carry more digits than a
    driver sends). Anything else gets the recording's ``*`` reply and is listed in :attr:`unrecorded`.
    """

    address = "replay"
    source = "the recording"

    def __init__(self, program: dict[str, Any], resolution: float = 1e-4) -> None:
        super().__init__()
        self.resolution = resolution
        self.recorded = {entry["cmd"].strip().lower(): entry["entries"] for entry in program["data"]}
        self.calls: dict[str, int] = {}
        self.unread = [line for item in program.get("initial_out", []) for line in _lines(item)]
        self.sent: list[str] = []
        self.unrecorded: list[str] = []

    @classmethod
    def from_file(cls, path: str | Path, resolution: float = 1e-4) -> ReplayTransport:
        return cls(json.loads(Path(path).read_text()), resolution)

    def write(self, command: str) -> None:
        self.sent.append(command)
        key = self._key(command.strip().lower())
        if key is None:
            self.unrecorded.append(command)
            key = "*"
        entries = self.recorded.get(key, [])
        if not entries:
            return
        call = self.calls.get(key, 0)
        self.calls[key] = call + 1
        self.unread += _lines(entries[call % len(entries)].get("data", ""))

    def query(self, command: str) -> str:
        self.write(command)
        return self.read_line(command)

    def _key(self, command: str) -> str | None:
        if command in self.recorded:
            return command
        setting = SETTING.fullmatch(command)
        if setting is None:
            return None
        for key in self.recorded:
            recorded = SETTING.fullmatch(key)
            if recorded is None or recorded["header"] != setting["header"]:
                continue
            if self._same(recorded["values"], setting["values"]):
                return key
        return None

    def _same(self, recorded: str, sent: str) -> bool:
        try:
            a, b = [float(v) for v in recorded.split(",")], [float(v) for v in sent.split(",")]
        except ValueError:
            return False
        return len(a) == len(b) and all(abs(x - y) <= self.resolution for x, y in zip(a, b, strict=True))


def _lines(data: str | list[str]) -> list[str]:
    """The lines of a recorded reply (one string, or a list of them, each ending in ``\\n`` or not)."""
    items = [data] if isinstance(data, str) else data
    return [line for item in items for line in item.removesuffix("\n").split("\n")]
