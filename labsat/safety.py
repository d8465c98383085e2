"""Process-wide safe-state hooks: SIGINT, SIGTERM and interpreter exit.

Every open bench registers here. When the process is told to stop, or exits for any reason Python
still controls, each registered bench ramps its outputs to the safe values before the process goes.
(SIGKILL cannot be caught: that is why the service also drives every bench to its safe state on
start.)
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class HasSafeState(Protocol):
    @property
    def name(self) -> str: ...

    def safe_state(self) -> None: ...


_registered: dict[int, HasSafeState] = {}
_installed = False
_lock = threading.Lock()


def register(bench: HasSafeState) -> None:
    """Drive ``bench`` to its safe state on SIGINT, SIGTERM and at exit, until :func:`unregister`."""
    with _lock:
        _registered[id(bench)] = bench
        _install_once()


def unregister(bench: HasSafeState) -> None:
    with _lock:
        _registered.pop(id(bench), None)


def make_all_safe() -> None:
    """Safe state for every registered bench; a failing bench does not stop the others."""
    for bench in list(_registered.values()):
        try:
            bench.safe_state()
        except Exception as exc:
            log.error("safe state of bench %s failed: %s", bench.name, exc)


def _install_once() -> None:
    global _installed
    if _installed:
        return
    atexit.register(make_all_safe)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _make_handler(signal.getsignal(signum)))
    _installed = True


def _make_handler(previous: object) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %s: driving every bench to its safe state", signal.Signals(signum).name)
        make_all_safe()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    return handler
