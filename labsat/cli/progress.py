"""A progress bar with the stage a long command is in and the time it has left (``demo``, ``evaluate``).

A spinner says only that something runs; a bar says which stage, how far it is and its ETA, so a user
can tell a ten-minute run from a stuck one. A stage of unknown length shows a pulsing bar and no ETA.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StageBar:
    """One bar that each stage restarts: ``stage(text, total)``, then ``advance(done, note)``."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task("", total=None, note="")

    def stage(self, text: str, total: float | None = None) -> None:
        """Start a stage: its name, and how many units it has (None: not known)."""
        self._progress.reset(self._task, description=text, total=total, completed=0, note="")

    def advance(self, done: float, note: str = "") -> None:
        """Units of the stage done so far, and a short note (the loss, the model in work)."""
        self._progress.update(self._task, completed=done, note=note)


@contextmanager
def stage_bar(console: Console, *, disable: bool = False) -> Iterator[StageBar]:
    """A :class:`StageBar` on ``console`` for the block (``disable``: nothing shown, for ``--json``)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=disable, transient=True) as progress:
        yield StageBar(progress)
