"""Transports: how a driver's command reaches an instrument and how its reply comes back.

Two layers, so that recovery is written once and every driver gets it:

- a raw :class:`Transport` (a VISA resource through pyvisa, or a pyserial port or URL) writes one
  line and reads one line, each within a timeout, and logs both at DEBUG. It knows nothing about
  recovery: a timeout, a dropped link or an OS error becomes a :class:`LinkError`.
- a :class:`Link` is what a driver holds. It owns the one lock per instrument, so two threads
  never interleave a command/reply pair; it retries a failed exchange with exponential back-off
  after reopening the transport; and on every reopen it checks that the instrument answering is
  the one it first connected to (its identity) before a driver hook re-asserts device-side limits
  and looks at the outputs (it reports lost ones to the guard; it never writes them back).

A :class:`LinkError` (timeout, dropped link, a reply that does not parse) is retried. An error the
instrument itself reports (``E01``, a SCPI error-queue entry) is a plain
:class:`~labsat.errors.InstrumentError` and is not: sending the same command again would get the
same answer. Every error message names the instrument, its address and the command.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

import pyvisa
import serial

from labsat.errors import InstrumentError

log = logging.getLogger(__name__)

T = TypeVar("T")

VISA_PREFIXES = ("TCPIP", "ASRL", "GPIB", "USB", "VXI", "PXI")
STALE_WAIT_MS = 20  # how long a fresh VISA connection is drained of replies meant for the old one
MAX_STALE_REPLIES = 64


class LinkError(InstrumentError):
    """The exchange failed on the wire (timeout, dropped link, garbled reply); worth a retry."""


class Transport(Protocol):
    """One open connection to one instrument: line out, line in, nothing more."""

    address: str

    def write(self, command: str) -> None:
        """Send one command line (the transport adds the termination)."""
        ...

    def query(self, command: str) -> str:
        """Send one command line and return the reply line without its termination."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LineTransport(Transport, Protocol):
    """A transport that also reads lines on their own: for instruments that answer a command with
    several lines, or send lines nobody asked for (a Qontrol's power-up notice)."""

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        """The next line within ``timeout_s`` (default: the transport's timeout), else :class:`LinkError`."""
        ...

    def drain(self) -> list[str]:
        """Every line already received and not yet read, without waiting for more."""
        ...


@cache
def _resource_manager(library: str) -> pyvisa.ResourceManager:
    """One resource manager per VISA backend (``@py``, ``@sim``, ``file.yaml@sim``) per process."""
    return pyvisa.ResourceManager(library)


class VisaTransport:
    """A VISA resource: ``TCPIP::host::port::SOCKET`` or ``ASRL/dev/ttyUSB0::INSTR`` through pyvisa-py
    (``@py``, needs no vendor VISA), or any resource of a pyvisa-sim definition file (``x.yaml@sim``)."""

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float,
        library: str = "@py",
        read_termination: str = "\n",
        write_termination: str = "\n",
    ) -> None:
        self.address = address
        timeout_ms = max(1, round(timeout_s * 1000))
        try:
            self._resource: Any = _resource_manager(library).open_resource(
                address,
                open_timeout=timeout_ms,
                timeout=timeout_ms,
                read_termination=read_termination,
                write_termination=write_termination,
            )
        except Exception as exc:  # pyvisa-py raises a bare Exception when a socket cannot connect
            raise LinkError(f"{address}: cannot open ({exc})") from None
        self._disable_nagle()
        self._discard_stale_replies(timeout_ms)

    def _disable_nagle(self) -> None:
        """Send each command at once on TCP sockets.

        pyvisa-py leaves Nagle's algorithm on (and its ``VI_ATTR_TCPIP_NODELAY`` setter does not reach
        the socket), so a command written right after another waits for the instrument's delayed ACK,
        about 40 ms. Where the backend exposes the socket, switch Nagle off on it.
        """
        session = getattr(self._resource.visalib, "sessions", {}).get(self._resource.session)
        interface = getattr(session, "interface", None)
        if isinstance(interface, socket.socket):
            interface.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _discard_stale_replies(self, timeout_ms: int) -> None:
        """Read away replies left over from before a reconnect; one would answer our identity query.

        Not every backend implements device clear (pyvisa-sim does not), so this drains instead.
        """
        self._resource.timeout = STALE_WAIT_MS
        try:
            for _ in range(MAX_STALE_REPLIES):
                log.debug("%s: discarding stale reply %r", self.address, self._resource.read())
        except (pyvisa.Error, OSError, UnicodeDecodeError):
            pass
        finally:
            self._resource.timeout = timeout_ms

    def write(self, command: str) -> None:
        log.debug("%s << %s", self.address, command)
        try:
            self._resource.write(command)
        except (pyvisa.Error, OSError) as exc:
            raise LinkError(f"{self.address}: sending {command!r} failed ({exc})") from None

    def query(self, command: str) -> str:
        self.write(command)
        try:
            reply = str(self._resource.read())
        except (pyvisa.Error, OSError) as exc:
            raise LinkError(f"{self.address}: no reply to {command!r} ({exc})") from None
        except UnicodeDecodeError:
            raise LinkError(f"{self.address}: reply to {command!r} is not text") from None
        log.debug("%s >> %s", self.address, reply)
        return reply.strip()

    def close(self) -> None:
        try:
            self._resource.close()
        except (pyvisa.Error, OSError) as exc:
            log.debug("%s: close failed (%s)", self.address, exc)


class SerialTransport:
    """A pyserial port: a device path (``/dev/ttyUSB0``, ``COM3``) or any URL pyserial knows
    (``socket://``, ``rfc2217://``, ``spy://``, and labsat's own ``labsatemu://`` emulators)."""

    def __init__(self, url: str, *, timeout_s: float, baudrate: int = 115200, termination: str = "\n") -> None:
        self.address = url
        self._timeout_s = timeout_s
        self._termination = termination.encode("ascii")
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s)
            self._port.reset_input_buffer()  # a reply left over from before would answer our first query
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{url}: cannot open ({exc})") from None

    def write(self, command: str) -> None:
        log.debug("%s << %s", self.address, command)
        try:  # no flush(): on a real port it is tcdrain, a wait for bytes whose reply cannot come sooner anyway
            self._port.write(command.encode("ascii") + self._termination)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.address}: sending {command!r} failed ({exc})") from None

    def query(self, command: str) -> str:
        self.write(command)
        return self.read_line(command)

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        """The next line, within ``timeout_s`` (default: the transport's timeout); for protocols that
        answer with several lines or send lines nobody asked for."""
        timeout = self._timeout_s if timeout_s is None else timeout_s
        try:
            if timeout != self._timeout_s:
                self._port.timeout = timeout
            try:
                data = self._port.read_until(self._termination)
            finally:
                if timeout != self._timeout_s:
                    self._port.timeout = self._timeout_s
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.address}: no reply to {command!r} ({exc})") from None
        if not data.endswith(self._termination):
            got = f" (got {data!r} before the timeout)" if data else ""
            raise LinkError(f"{self.address}: no reply to {command!r} within {timeout:g} s{got}")
        reply = data.decode("ascii", errors="replace").strip()
        log.debug("%s >> %s", self.address, reply)
        return reply

    def drain(self) -> list[str]:
        """Every line already waiting in the input buffer, without waiting for more."""
        lines: list[str] = []
        try:
            while self._port.in_waiting and len(lines) < MAX_STALE_REPLIES:
                lines.append(self.read_line("(nothing: draining stale lines)"))
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.address}: reading stale lines failed ({exc})") from None
        return lines

    def close(self) -> None:
        self._port.close()


def is_visa_address(address: str) -> bool:
    return address.upper().startswith(VISA_PREFIXES)


def transport_opener(address: str, options: Mapping[str, Any], timeout_s: float) -> Callable[[], Transport]:
    """How to (re)open ``address``: VISA resource strings go to pyvisa, everything else to pyserial.

    Driver options read here: ``visa_library`` (default ``@py``), ``baudrate`` (default 115200),
    ``read_termination``/``write_termination`` (VISA) and ``termination`` (serial), default ``\\n``.
    """
    if is_visa_address(address):
        library = str(options.get("visa_library", "@py"))
        read_term = str(options.get("read_termination", "\n"))
        write_term = str(options.get("write_termination", "\n"))
        return lambda: VisaTransport(
            address, timeout_s=timeout_s, library=library, read_termination=read_term, write_termination=write_term
        )
    baudrate = int(options.get("baudrate", 115200))
    termination = str(options.get("termination", "\n"))
    return lambda: SerialTransport(address, timeout_s=timeout_s, baudrate=baudrate, termination=termination)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a :class:`Link` tries before it gives up with an :class:`InstrumentError`.

    Each exchange gets ``1 + retries`` attempts; before attempt ``k >= 1`` it waits
    ``backoff_s * backoff_factor**(k-1)`` and reopens the transport. Every wire call is bounded by
    ``timeout_s``, so a failing exchange of ``calls`` wire calls returns within
    :meth:`worst_case_s` — the instrument can never hang a caller.
    """

    timeout_s: float = 1.0
    retries: int = 2
    backoff_s: float = 0.05
    backoff_factor: float = 2.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RetryPolicy:
        """Read ``timeout_s``, ``retries``, ``backoff_s``, ``backoff_factor`` from a device's ``options``."""
        defaults = cls()
        return cls(
            timeout_s=float(options.get("timeout_s", defaults.timeout_s)),
            retries=int(options.get("retries", defaults.retries)),
            backoff_s=float(options.get("backoff_s", defaults.backoff_s)),
            backoff_factor=float(options.get("backoff_factor", defaults.backoff_factor)),
        )

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first)."""
        return self.backoff_s * self.backoff_factor ** (retry - 1)

    def delays(self) -> list[float]:
        """Waits before each retry."""
        return [self.delay(k) for k in range(1, self.retries + 1)]

    def worst_case_s(self, calls: int = 1) -> float:
        """Longest a failing exchange of ``calls`` wire calls can take (reopen counts as one call)."""
        return (self.retries + 1) * (calls + 1) * self.timeout_s + sum(self.delays())


class Link:
    """The one connection a driver holds to its instrument: locked, logged, retried, reconnected.

    ``connect`` opens the transport and records the instrument's identity. After a failed exchange
    the link closes the transport; the next attempt reopens it, asks the identity again, refuses to
    go on if a different instrument answers, and calls the driver's ``restore`` hook (limits, and a
    look at the outputs) before repeating the exchange. Exchanges run inside the hooks go straight to the
    wire: a failure there fails the reopen, which the retry loop counts as one attempt.
    """

    def __init__(self, name: str, address: str, opener: Callable[[], Transport], policy: RetryPolicy) -> None:
        self.name = name
        self.address = address
        self.policy = policy
        self.lock = threading.RLock()
        self.reconnects = 0
        self._opener = opener
        self._transport: Transport | None = None
        self._identity: str | None = None
        self._identify: Callable[[], str] = lambda: ""
        self._restore: Callable[[], None] = lambda: None
        self._in_hook = False
        self._closed = False

    def connect(self, identify: Callable[[], str], restore: Callable[[], None]) -> str:
        """Open the link; returns the instrument's identity, which every reopen must match."""
        with self.lock:
            self._identify, self._restore = identify, restore
            return self.run("connect", lambda _transport: self._identity or "")

    def run(self, what: str, exchange: Callable[[Transport], T]) -> T:
        """Run ``exchange`` on the open transport, retrying it whole after a link failure.

        An exchange must be safe to repeat (absolute settings, queries): a link that drops after the
        instrument acted but before it answered is indistinguishable from one that dropped before.
        A ``ValueError`` raised while parsing a reply counts as a garbled reply and is retried.
        """
        with self.lock:
            if self._closed:
                raise InstrumentError(f"{self.name} ({self.address}): {what!r} refused: the link is closed")
            if self._in_hook:
                assert self._transport is not None
                return self._exchange(what, exchange, self._transport)
            failures: list[str] = []
            while True:
                try:
                    return self._exchange(what, exchange, self._transport or self._reopen())
                except LinkError as exc:
                    failures.append(str(exc))
                    log.warning(
                        "%s (%s): %s failed (attempt %d): %s", self.name, self.address, what, len(failures), exc
                    )
                    self._drop()
                if len(failures) > self.policy.retries:
                    break
                time.sleep(self.policy.delay(len(failures)))
            raise InstrumentError(
                f"{self.name} ({self.address}): {what!r} failed after {len(failures)} attempts; last: {failures[-1]}"
            )

    @overload
    def query(self, command: str) -> str: ...
    @overload
    def query(self, command: str, parse: Callable[[str], T]) -> T: ...
    def query(self, command: str, parse: Callable[[str], Any] = str) -> Any:
        """Send ``command``, return ``parse(reply)``; a reply ``parse`` rejects is retried."""
        return self.run(command, lambda transport: parse(transport.query(command)))

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._drop()

    def _exchange(self, what: str, exchange: Callable[[Transport], T], transport: Transport) -> T:
        try:
            return exchange(transport)
        except (ValueError, IndexError) as exc:
            raise LinkError(f"{what}: garbled reply ({exc})") from None

    def _reopen(self) -> Transport:
        first = self._identity is None
        transport = self._transport = self._opener()
        self._in_hook = True
        try:
            identity = self._identify()
            if first:
                self._identity = identity
            elif identity != self._identity:
                raise InstrumentError(
                    f"{self.name} ({self.address}): a different instrument answers after reconnecting: "
                    f"{identity!r}, expected {self._identity!r}; refusing to drive it"
                )
            else:
                self.reconnects += 1
                log.info("%s (%s): reconnected; restoring limits, checking outputs", self.name, self.address)
                self._restore()
        except Exception:  # a reopen that did not finish must not leave a half-restored link open
            self._drop()
            raise
        finally:
            self._in_hook = False
        return transport

    def _drop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
