"""A TCP front end: serves one emulator on 127.0.0.1, reached as ``TCPIP::127.0.0.1::<port>::SOCKET``.

Bound to the loopback interface only and to an ephemeral port, so tests can run side by side and
nothing is reachable from the network. One daemon thread accepts, one per connection serves; every
blocking call has a short timeout so :meth:`TcpServer.stop` returns promptly. A link the emulator
drops is closed with a reset (``SO_LINGER`` 0), which the host sees at once as a dropped connection.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading

from .wire import LineEmulator, Session

log = logging.getLogger(__name__)

POLL_S = 0.05


class TcpServer:
    """Serve ``emulator`` until :meth:`stop`; usable as a context manager."""

    def __init__(self, emulator: LineEmulator, name: str = "emulator") -> None:
        self.emulator = emulator
        self.name = name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True)
        self._accepter.start()

    @property
    def address(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def stop(self) -> None:
        """Stop accepting, close every connection, wait (briefly) for the threads."""
        self._stopping.set()
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _reset(connection)
        for thread in [self._accepter, *self._threads]:
            thread.join(timeout=1.0)

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed by stop()
                return
            connection.settimeout(POLL_S)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.add(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), name=f"{self.name}-conn", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        session = Session(self.emulator)
        try:
            while not self._stopping.is_set():
                try:
                    data = connection.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                reply, alive = session.receive(data)
                if reply:
                    connection.sendall(reply)
                if not alive:
                    log.debug("%s: dropping the link (fault injection)", self.name)
                    _reset(connection)
                    return
        except OSError as exc:
            log.debug("%s: connection ended (%s)", self.name, exc)
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()


def _reset(connection: socket.socket) -> None:
    """Close with a TCP reset, as a link that vanished rather than one closed politely."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass
