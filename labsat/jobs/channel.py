"""Calls both ways over one duplex pipe between the service and a bench process.

Each side names a method of the other and either waits for its answer (:meth:`Channel.call`) or does not
(:meth:`Channel.tell`: a job's progress and events, which must not wait on a busy service). A reader
thread on each side takes the answers and runs the incoming calls: each on a thread of its own, so a call
that waits (a manual set behind a ramp) never holds up another (the emergency stop), or, on an ``ordered``
channel, one after another in the order they were sent (the journal writes of a job, numbered as they
happen). Answers and errors travel pickled; an error that cannot be pickled arrives as a
:class:`~labsat.errors.LabsatError` with its text.
When the pipe breaks (the other process died), every waiting call fails with :class:`ChannelClosed`
and ``on_close`` runs once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from labsat.errors import LabsatError

log = logging.getLogger(__name__)

Handler = Callable[[str, tuple[Any, ...], dict[str, Any]], Any]
"""``(method, args, kwargs) -> answer``: what a side does with a call from the other."""


class ChannelClosed(LabsatError):
    """The process at the other end of the pipe has gone; the call was not answered."""


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class Channel:
    """One end of the pipe: :meth:`call` the other side; ``handler`` answers the other side's calls."""

    def __init__(
        self,
        conn: Connection,
        handler: Handler,
        on_close: Callable[[], None] | None = None,
        *,
        ordered: bool = False,
    ) -> None:
        self._conn = conn
        self._ordered: queue.SimpleQueue[tuple[Any, ...] | None] | None = queue.SimpleQueue() if ordered else None
        self._handler = handler
        self._on_close = on_close
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiter] = {}
        self._ids = itertools.count()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="labsat-channel", daemon=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._reader.start()
        if self._ordered is not None:
            threading.Thread(target=self._serve_in_order, name="labsat-channel-ordered", daemon=True).start()

    def tell(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Ask the other side to run ``method(*args, **kwargs)`` without waiting; an error there is logged there."""
        try:
            self._send(("tell", None, method, args, kwargs))
        except (OSError, ValueError) as exc:
            raise ChannelClosed(f"cannot tell {method}: {exc}") from exc

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The other side's answer to ``method(*args, **kwargs)``; its error is raised here."""
        waiter = _Waiter()
        with self._lock:
            if self._closed:
                raise ChannelClosed(f"cannot call {method}: the other process has gone")
            call_id = next(self._ids)
            self._waiting[call_id] = waiter
        try:
            self._send(("call", call_id, method, args, kwargs))
        except (OSError, ValueError) as exc:
            with self._lock:
                self._waiting.pop(call_id, None)
            raise ChannelClosed(f"cannot call {method}: {exc}") from exc
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def close(self) -> None:
        """Tell the other side this end is done; both readers then end and close the pipe.

        A word rather than closing the handle: the reader thread is blocked in ``recv`` on it, and on Linux
        a handle closed under a blocked read stays open, so the other side would never see the end.
        """
        with contextlib.suppress(OSError, ValueError):  # already gone
            self._send(("bye",))

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _send_unlocked(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(message)

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message this side cannot unpickle: it is lost, the channel goes on
                log.exception("a message over the bench process pipe could not be read")
                continue
            if message[0] == "bye":
                with self._send_lock:  # the other side closes its end when it reads ours
                    self._send_unlocked(("bye",))
                break
            if message[0] in ("call", "tell"):
                if self._ordered is not None:
                    self._ordered.put(message)
                else:
                    threading.Thread(target=self._run, args=message, daemon=True).start()
                continue
            _, call_id, ok, value = message
            with self._lock:
                waiter = self._waiting.pop(call_id, None)
            if waiter is not None:
                waiter.value, waiter.error = (value, None) if ok else (None, value)
                waiter.done.set()
        self._conn.close()
        if self._ordered is not None:
            self._ordered.put(None)
        with self._lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting.values()), {}
        for waiter in waiting:
            waiter.error = ChannelClosed("the other process went away before answering")
            waiter.done.set()
        if self._on_close is not None:
            self._on_close()

    def _serve_in_order(self) -> None:
        assert self._ordered is not None
        while (message := self._ordered.get()) is not None:
            self._run(*message)

    def _run(self, kind: str, call_id: int | None, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if kind == "tell":
            try:
                self._handler(method, args, kwargs)
            except Exception:
                log.exception("%s, told by the other process, failed", method)
            return
        assert call_id is not None
        self._answer(call_id, method, args, kwargs)

    def _answer(self, call_id: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            answer: tuple[Any, ...] = ("answer", call_id, True, self._handler(method, args, kwargs))
        except BaseException as exc:  # handed to the caller, which raises it
            answer = ("answer", call_id, False, portable(exc))
        try:
            self._send(answer)
        except (OSError, ValueError):
            pass  # the caller has gone; its side fails the call with ChannelClosed
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            self._send(("answer", call_id, False, LabsatError(f"{method}: its answer cannot be sent: {exc}")))


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`LabsatError` with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return LabsatError(str(exc) if isinstance(exc, LabsatError) else f"{type(exc).__name__}: {exc}")
    return exc
