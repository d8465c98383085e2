"""pyserial URL handler for ``labsatemu://<key>``: a serial port whose far end is an emulator in this process.

``serial.serial_for_url(url)`` imports ``<package>.protocol_<scheme>`` from each package listed in
``serial.protocol_handler_packages``; importing :mod:`labsat.simulators.emulators` adds itself to
that list, so a driver opens an emulated instrument exactly as it opens ``/dev/ttyUSB0``. An
emulator is reachable once :func:`publish` has put it under a key, until :func:`withdraw`.

The port is synchronous: a written line is interpreted at once and its reply waits in the input
buffer; lines the instrument sends on its own (:meth:`LineEmulator.take_unsolicited`) join the input
when the host looks. A link the emulator drops behaves like an unplugged USB adapter: reads and
writes raise ``SerialException`` until the port is opened again. A port opened at other UART
settings than the instrument's (:attr:`LineEmulator.serial_settings`) carries noise both ways, as a
wrong baud rate does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from .wire import GARBAGE, LineEmulator, Session

SCHEME = "labsatemu"
_published: dict[str, LineEmulator] = {}
_lock = threading.Lock()


def publish(key: str, emulator: LineEmulator) -> str:
    """Make ``emulator`` reachable; returns its URL."""
    with _lock:
        if key in _published:
            raise ValueError(f"an emulator is already published as {key!r}")
        _published[key] = emulator
    return f"{SCHEME}://{key}"


def withdraw(key: str) -> None:
    with _lock:
        _published.pop(key, None)


class Serial(SerialBase):
    """The port object pyserial hands out for ``labsatemu://`` URLs."""

    is_open: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._session: Session | None = None
        self._input = bytearray()
        self._dropped = False
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        key = str(self.portstr).partition("://")[2]
        with _lock:
            emulator = _published.get(key)
        if emulator is None:
            raise SerialException(f"no emulated instrument at {self.portstr}")
        self._session = Session(emulator)
        self._input.clear()
        self._dropped = False
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        self._session = None

    def _reconfigure_port(self) -> None:
        """Baud rate, parity and the like mean nothing to an in-process port."""

    @property
    def in_waiting(self) -> int:
        self._check_open()
        self._listen()
        return len(self._input)

    def read(self, size: int = 1) -> bytes:
        self._check_open()
        self._listen()
        if not self._input:
            if self._dropped:
                raise SerialException("device reports readiness to read but returned no data (device disconnected?)")
            if self._timeout:
                time.sleep(self._timeout)  # nothing can arrive later: the emulator answers synchronously
            return b""
        data = bytes(self._input[:size])
        del self._input[:size]
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        if self._dropped:
            raise SerialException("write failed: device disconnected")
        assert self._session is not None
        self._listen()
        if not self._settings_match():
            self._input += GARBAGE  # the instrument reads noise and answers nothing we can read
            return len(data)
        reply, alive = self._session.receive(bytes(data))
        self._input += reply
        self._dropped = not alive
        return len(data)

    def reset_input_buffer(self) -> None:
        self._check_open()
        self._listen()
        self._input.clear()

    def _listen(self) -> None:
        """Take what the instrument sent on its own into the input buffer."""
        if self._session is not None and not self._dropped:
            self._input += self._session.emulator.take_unsolicited()

    def _settings_match(self) -> bool:
        assert self._session is not None
        wanted = self._session.emulator.serial_settings
        if wanted is None:
            return True
        have = (self.baudrate, self.bytesize, self.parity, self.stopbits)
        return have == (wanted.baudrate, wanted.bytesize, wanted.parity, wanted.stopbits)

    def reset_output_buffer(self) -> None:
        self._check_open()

    def _update_rts_state(self) -> None: ...

    def _update_dtr_state(self) -> None: ...

    def _update_break_state(self) -> None: ...

    def _check_open(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
