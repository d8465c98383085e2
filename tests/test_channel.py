"""The pipe between the service and a bench process: calls and tells, order, errors, a vanished peer."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

from labsat.errors import LabsatError, LimitViolation
from labsat.jobs.channel import Channel, ChannelClosed


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def _pair(handler: Any, ordered: bool = False) -> tuple[Channel, Channel]:
    """``caller`` → ``served``: calls from ``caller`` run ``handler`` on the ``served`` side."""
    left, right = multiprocessing.Pipe()
    served = Channel(right, handler, ordered=ordered)
    caller = Channel(left, lambda method, args, kwargs: None)
    served.start()
    caller.start()
    return caller, served


def test_tells_and_calls_run_in_the_order_they_were_sent_on_an_ordered_channel() -> None:
    seen: list[int] = []

    def handler(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if method == "append":
            seen.append(args[0])
            return None
        return list(seen)

    caller, _ = _pair(handler, ordered=True)
    for value in range(200):
        caller.tell("append", value)
    assert caller.call("snapshot") == list(range(200))  # a call sees every tell sent before it
    caller.close()


def test_errors_cross_the_pipe_as_themselves_or_as_their_text() -> None:
    def handler(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if method == "refuse":
            raise LimitViolation("heaters", "h0", 9.0, "above 4 V")
        raise _Unpicklable(1, 2)

    caller, _ = _pair(handler)
    with pytest.raises(LimitViolation, match=r"heaters\.h0 = 9 refused: above 4 V"):
        caller.call("refuse")
    with pytest.raises(LabsatError, match="_Unpicklable: 1 and 2"):
        caller.call("broken")
    caller.close()


def test_a_call_waiting_when_the_other_side_goes_fails_and_later_calls_are_refused() -> None:
    started = threading.Event()
    release = threading.Event()

    def handler(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        started.set()
        release.wait(10)

    caller, served = _pair(handler)
    failure: list[BaseException] = []

    def wait_for_answer() -> None:
        try:
            caller.call("slow")
        except BaseException as exc:
            failure.append(exc)

    waiting = threading.Thread(target=wait_for_answer)
    waiting.start()
    assert started.wait(10)
    served.close()  # the served side says goodbye: both readers end
    waiting.join(10)
    release.set()
    assert len(failure) == 1 and isinstance(failure[0], ChannelClosed)
    with pytest.raises(ChannelClosed):
        caller.call("again")
