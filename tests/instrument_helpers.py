"""What the driver-against-emulator tests share: a fast link and a served emulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from labsat.drivers.transport import Link, RetryPolicy, transport_opener
from labsat.simulators.emulators.tcp import TcpServer
from labsat.simulators.emulators.wire import LineEmulator

POLICY = RetryPolicy(timeout_s=0.15, retries=2, backoff_s=0.01)  # tight, so a failing test fails fast

E = TypeVar("E", bound=LineEmulator)


def fast_link(name: str, address: str, policy: RetryPolicy = POLICY) -> Link:
    return Link(name, address, transport_opener(address, {}, policy.timeout_s), policy)


@contextmanager
def served(emulator: E) -> Iterator[tuple[E, str]]:
    """``emulator`` on 127.0.0.1 for the duration: (the emulator, the VISA address to reach it)."""
    with TcpServer(emulator, name=type(emulator).__name__) as server:
        yield emulator, server.address
