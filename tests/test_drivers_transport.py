"""Transports and links: timeouts, retry with back-off, identity on reconnect, one lock, debug logging."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from labsat.drivers.transport import Link, LinkError, RetryPolicy, SerialTransport, VisaTransport, transport_opener
from labsat.errors import InstrumentError


class FlakyTransport:
    """Answers ``re:<command>``; the first ``failures`` exchanges of the link fail on the wire."""

    address = "flaky"

    def __init__(self, shared: dict[str, int], identity: str) -> None:
        self.shared = shared
        self.identity = identity

    def write(self, command: str) -> None:
        self.query(command)

    def query(self, command: str) -> str:
        if command == "*IDN?":
            return self.identity
        if self.shared["failures"] > 0:
            self.shared["failures"] -= 1
            raise LinkError(f"flaky: no reply to {command!r}")
        return f"re:{command}"

    def close(self) -> None:
        self.shared["closed"] += 1


def _flaky_link(failures: int, identities: list[str], retries: int = 3) -> tuple[Link, dict[str, int]]:
    shared = {"failures": failures, "closed": 0}
    answers = iter(identities)
    policy = RetryPolicy(timeout_s=0.1, retries=retries, backoff_s=0.01, backoff_factor=2.0)
    link = Link("dut", "flaky", lambda: FlakyTransport(shared, next(answers)), policy)
    return link, shared


def test_a_failed_exchange_is_retried_after_reopening_with_exponential_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("labsat.drivers.transport.time.sleep", waits.append)
    link, shared = _flaky_link(failures=2, identities=["A", "A", "A"])
    restored = []
    assert link.connect(identify=lambda: link.query("*IDN?"), restore=lambda: restored.append(True)) == "A"
    assert link.query("V?") == "re:V?"
    assert [w for w in waits if w] == [0.01, 0.02]
    assert shared["closed"] == 2
    assert link.reconnects == 2
    assert restored == [True, True]


def test_retries_are_bounded_and_the_error_names_instrument_address_and_command() -> None:
    link, _ = _flaky_link(failures=10, identities=["A"] * 10, retries=2)
    link.connect(identify=lambda: link.query("*IDN?"), restore=lambda: None)
    with pytest.raises(InstrumentError, match=r"dut \(flaky\): 'V\?' failed after 3 attempts; last: flaky: no reply"):
        link.query("V?")


def test_a_different_instrument_after_reconnect_is_refused() -> None:
    link, _ = _flaky_link(failures=1, identities=["A", "B"])
    link.connect(identify=lambda: link.query("*IDN?"), restore=lambda: None)
    with pytest.raises(InstrumentError, match="a different instrument answers after reconnecting: 'B', expected 'A'"):
        link.query("V?")


def test_a_reply_that_does_not_parse_is_retried() -> None:
    link, _ = _flaky_link(failures=0, identities=["A", "A"], retries=1)
    link.connect(identify=lambda: link.query("*IDN?"), restore=lambda: None)
    calls = []

    def parse(reply: str) -> float:
        calls.append(reply)
        if len(calls) == 1:
            raise ValueError("not a number")
        return 1.0

    assert link.query("V?", parse) == 1.0
    assert link.reconnects == 1


def test_concurrent_callers_never_interleave_a_command_and_its_reply() -> None:
    class Wire:
        """One shared line: a reply belongs to whatever was written last."""

        address = "wire"
        last = ""

        def write(self, command: str) -> None:
            self.last = command

        def query(self, command: str) -> str:
            self.write(command)
            time.sleep(0.0005)  # the instrument thinks; another thread would write now
            return f"re:{self.last}"

        def close(self) -> None: ...

    wire = Wire()
    link = Link("dut", "wire", lambda: wire, RetryPolicy(timeout_s=0.1, retries=0))
    link.connect(identify=lambda: "A", restore=lambda: None)
    mismatches: list[tuple[str, str]] = []

    def worker(k: int) -> None:
        for i in range(20):
            command = f"Q{k}-{i}?"
            reply = link.query(command)
            if reply != f"re:{command}":
                mismatches.append((command, reply))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_every_command_and_reply_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="labsat.drivers.transport")
    transport = SerialTransport("loop://", timeout_s=0.2)  # pyserial's loop-back: the reply is the command
    assert transport.query("v3?") == "v3?"
    transport.close()
    assert "loop:// << v3?" in caplog.text
    assert "loop:// >> v3?" in caplog.text


def test_a_dead_tcp_address_fails_fast_with_a_link_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    started = time.monotonic()
    with pytest.raises(LinkError, match=r"TCPIP::127\.0\.0\.1::\d+::SOCKET: (cannot open|no reply|sending)"):
        VisaTransport(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout_s=0.3).query("*IDN?")
    assert time.monotonic() - started < 1.0


def test_addresses_choose_their_transport() -> None:
    assert isinstance(transport_opener("loop://", {}, 0.1)(), SerialTransport)
    with pytest.raises(LinkError, match="ASRL/dev/labsat-none::INSTR: cannot open"):
        transport_opener("ASRL/dev/labsat-none::INSTR", {}, 0.1)()


def test_worst_case_bounds_a_failing_exchange() -> None:
    policy = RetryPolicy(timeout_s=0.2, retries=2, backoff_s=0.05, backoff_factor=2.0)
    assert policy.delays() == [0.05, 0.1]
    assert policy.worst_case_s(calls=1) == pytest.approx(3 * 2 * 0.2 + 0.15)
