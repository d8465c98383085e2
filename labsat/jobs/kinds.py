"""The registry of job kinds and the callback protocol between a kind and the worker that runs it.

A kind is a function ``run(context, params) -> result`` plus a pydantic model of its parameters. The
function calls into calibration, training or evaluation and passes them callbacks built on the
:class:`JobContext`: ``progress`` and ``metric`` report, and every report is also a *checkpoint* where
the worker may stop the job (cancel, service shutdown) or hold it (pause). The kinds' own code never
polls flags and never touches threads; stopping is an exception raised from inside a callback, which
unwinds the calibration or training loop between two of its steps.

Kinds register by name (:func:`register`); ``labsat.jobs.builtin`` registers labsat's four and publishes
``relock`` through a ``labsat.jobs`` entry point, like a plugin. A lab adds
its own by publishing a package with an entry point in the ``labsat.jobs`` group naming a
:class:`JobKind`; ``labsat serve`` registers every installed one (:func:`register_installed`) before it
builds the API, whose submission schema then documents the kind's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from labsat.entrypoints import JOB_KINDS, entry_points_of
from labsat.errors import LabsatError

if TYPE_CHECKING:
    from labsat.bench import Bench
    from labsat.store import Store


class JobStop(BaseException):
    """Raised at a checkpoint to end the job; a BaseException so no ``except Exception`` in a loop eats it."""


class JobCancelled(JobStop):
    """Someone cancelled the job (or pressed the emergency stop)."""


class JobInterrupted(JobStop):
    """The service is shutting down; the job can be resumed when it is back."""


class JobContext(Protocol):
    """What a running kind may use: its bench and store, reporting callbacks, and memory across attempts."""

    job_id: str
    bench: Bench
    store: Store
    resuming: bool
    """True when this attempt follows an earlier one of the same job (after a resume)."""
    memo: Mapping[str, Any]
    """What earlier attempts kept with :meth:`remember`."""

    def progress(self, done: float, total: float | None, phase: str = "", **values: float | int | str) -> None:
        """Report progress (stored at a bounded rate); a checkpoint."""

    def metric(self, **values: float | int) -> None:
        """Record one point of the job's metrics, e.g. ``epoch=3, loss=0.41``; a checkpoint."""

    def measured(self, procedure: str, measurement: dict[str, Any]) -> None:
        """Record a measurement as it is taken (JSON-able, e.g. a ring's sweep and fit) for live views; a checkpoint."""

    def log(self, message: str) -> None:
        """Add a line to the job's event log."""

    def remember(self, **values: Any) -> None:
        """Keep ``values`` for a later attempt of this job (stored at once)."""

    def checkpoint(self) -> None:
        """Return if the job may go on; wait while it is paused; raise :class:`JobStop` to end it."""

    def artifact_dir(self) -> Path:
        """The job's own artifact folder (``<data>/artifacts/jobs/<id>``)."""


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """A kind of job: its name, parameter model and function."""

    name: str
    params: type[P]
    run: Callable[[JobContext, P], dict[str, Any]]
    description: str
    resumable: bool = False
    """Whether a cancelled, failed or interrupted job of this kind may be resumed (and continue, not restart)."""


class UnknownKind(LabsatError):
    """A job kind nobody registered."""


_KINDS: dict[str, JobKind[Any]] = {}


def register(kind: JobKind[Any]) -> JobKind[Any]:
    """Make ``kind`` available to the engine and the API (replacing a kind of the same name)."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def get_kind(name: str) -> JobKind[Any]:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKind(f"unknown job kind {name!r} (known: {', '.join(sorted(_KINDS))})") from None


def registered() -> dict[str, JobKind[Any]]:
    """Every registered kind by name."""
    return dict(_KINDS)


def register_installed() -> list[str]:
    """Register the job kind every ``labsat.jobs`` entry point names; returns their names, sorted.

    An entry point that does not load, names something that is not a :class:`JobKind`, or a kind under
    another name, is refused naming it: a service never starts with a kind it announced but cannot run.
    """
    names = []
    for name, entry in sorted(entry_points_of(JOB_KINDS).items()):
        try:
            kind = entry.load()
        except (ImportError, AttributeError) as exc:
            raise UnknownKind(f"the {JOB_KINDS} entry point {name!r} ({entry.value}) cannot be loaded: {exc}") from exc
        if not isinstance(kind, JobKind) or kind.name != name:
            raise UnknownKind(
                f"the {JOB_KINDS} entry point {name!r} ({entry.value}) must name a JobKind called {name!r}"
            )
        register(kind)
        names.append(name)
    return names
