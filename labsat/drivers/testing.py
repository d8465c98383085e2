"""Protocol tests for drivers, PyMeasure style: replay an exact conversation, fail on any deviation.

A driver test lists the command/reply pairs the instrument would see (reply ``None`` for a command
that gets none; lines separated by ``\\n`` for a reply of several lines), runs the driver against
:func:`expected_protocol`, and checks that every pair was used, in order, and every reply line read.
No hardware, no emulator, no timing: the test pins down the bytes a driver sends, which is what
breaks a real instrument when it changes. Usable for a lab's own drivers too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .transport import Link, LinkError, RetryPolicy

Pair = tuple[str, str | None]


class ScriptedTransport:
    """A transport that plays the instrument's side of a fixed conversation.

    It is also a :class:`~labsat.drivers.transport.LineTransport`: a reply written in response to
    :meth:`write` waits, line by line, for :meth:`read_line`; lines a driver leaves unread are what
    :meth:`drain` finds before the next command (stale lines).
    """

    address = "scripted"

    def __init__(self, pairs: Sequence[Pair]) -> None:
        self.pending = list(pairs)
        self.unread: list[str] = []

    def write(self, command: str) -> None:
        """Send ``command``; a reply the script gives it waits for :meth:`read_line`."""
        reply = self._next(command, wants_reply=bool(self.pending) and self.pending[0][1] is not None)
        if reply is not None:
            self.unread += reply.split("\n")

    def query(self, command: str) -> str:
        reply = self._next(command, wants_reply=True)
        assert reply is not None
        return reply

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        if not self.unread:
            raise LinkError(f"{self.address}: no reply to {command!r} (the script has none)")
        return self.unread.pop(0)

    def drain(self) -> list[str]:
        lines, self.unread = self.unread, []
        return lines

    def close(self) -> None:
        """The conversation survives a reconnect: the same script goes on."""

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
