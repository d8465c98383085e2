"""A bench in a process of its own: the service answers for it, a supervisor restarts it when it dies.

``labsat serve`` runs each bench's :class:`~labsat.jobs.worker.BenchWorker` in a spawned bench process that
opens the bench and owns its instruments, so the API process never runs device or training code (one GIL
per bench: polling clients cannot slow a job, and a job cannot slow the answers). The two talk over a
:class:`~labsat.jobs.channel.Channel`:

- the service calls the worker's methods by name (:data:`WORKER_CALLS`: the queue, manual operations, the
  emergency stop, the guard's status);
- the worker records through :class:`RemoteJournal`, whose calls run on the service's
  :class:`~labsat.jobs.journal.JobJournal`: the service alone writes jobs and events, so its in-memory
  snapshots and event numbers stay right and no event is lost or numbered twice. Models, calibration
  records and artifacts the job makes go to the store directly (SQLite in WAL mode takes both processes).

When a bench process dies (SIGKILL, a crash in a driver), :class:`BenchProcess` marks the job that held the
bench interrupted, starts a fresh bench process, which opens the bench and drives it to its safe state,
latches a fault naming what happened (an administrator clears it after a look), and queues the waiting jobs
again. When the service dies instead, the bench process sees its pipe end, halts the guard (outputs safe),
stops its worker and closes the bench.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from labsat.benchfile import BenchFile
from labsat.errors import BenchFaulted, LabsatError
from labsat.jobs.channel import Channel, portable
from labsat.jobs.journal import JobJournal
from labsat.jobs.model import HOLDS_BENCH, EventType, Job, JobEvent, JobState, Progress
from labsat.jobs.worker import BenchWorker, GuardStatus
from labsat.ownership import announce, announced
from labsat.store import Store

log = logging.getLogger(__name__)

BenchSource = str | Path | BenchFile

WORKER_CALLS = frozenset(
    {
        "start",
        "shutdown",
        "enqueue",
        "status",
        "cancel",
        "pause",
        "unpause",
        "emergency_stop",
        "guard_status",
        "refuse_if_faulted",
        "clear_fault",
        "describe",
        "set_channels",
        "outputs",
    }
)
"""The worker methods the service may call in a bench process (nothing else crosses the pipe)."""

JOURNAL_CALLS = frozenset({"transition", "progress", "append", "remember", "memo", "events"})
"""The journal methods a bench process may call in the service."""

OPEN_TIMEOUT_S = 300.0
"""Longest a bench process may take to open its bench (instrument handshakes, emulators starting)."""


class BenchProcessError(LabsatError):
    """A bench process could not open its bench, or ended before it said so."""


class RemoteJournal:
    """The service's job journal as a bench process sees it: each call runs in the service.

    Progress, events and checkpoint memos are told, not asked: the job goes on without waiting for a
    service busy answering pollers, and the service writes them in the order they were sent, before any
    later transition (its end of the pipe is ordered). Already in the pipe, they survive the bench
    process's death."""

    def __init__(self, channel: Channel, store: Store) -> None:
        self._channel = channel
        self._store = store

    @property
    def store(self) -> Store:
        """The data directory's store, opened in this process (for the models and records a job makes)."""
        return self._store

    def transition(
        self, job_id: str, new: JobState, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> Job:
        answer: Job = self._channel.call("transition", job_id, new, error=error, result=result)
        return answer

    def progress(self, job_id: str, progress: Progress) -> None:
        self._channel.tell("progress", job_id, progress)

    def append(self, job_id: str, type: EventType, data: dict[str, Any]) -> None:
        self._channel.tell("append", job_id, type, data)

    def remember(self, job_id: str, values: Mapping[str, Any]) -> None:
        self._channel.tell("remember", job_id, dict(values))

    def memo(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._channel.call("memo", job_id)
        return answer

    def events(
        self, job_id: str, after: int = 0, limit: int | None = None, types: Sequence[EventType] | None = None
    ) -> list[JobEvent]:
        answer: list[JobEvent] = self._channel.call("events", job_id, after, limit, types)
        return answer


class BenchProcess:
    """One bench's worker in its own process, answered for from the service; see the module doc."""

    def __init__(
        self, source: BenchSource, data_dir: Path, journal: JobJournal, *, progress_interval: float = 0.25
    ) -> None:
        self.source = source
        self.data_dir = data_dir
        self.journal = journal
        self.progress_interval = progress_interval
        self.restarts = 0
        self._name = ""
        self._path = ""
        self._channel: Channel | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._closing = False
        self._opening = False
        self._started = False
        self._restarting: str | None = None
        """Why the bench has no working process (set from its loss until a fresh one has started)."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        return self._path

    @property
    def pid(self) -> int | None:
        """The bench process's pid (for an operator, and for the drills that kill it)."""
        return None if self._process is None else self._process.pid

    # -- life cycle ---------------------------------------------------------------------------------

    def open(self, fault: str | None = None) -> None:
        """Start the bench process and wait until its bench is open and safe; its error if it cannot open."""
        self._opening = True
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self._ready.clear()
        self._failure = None
        process = context.Process(
            target=serve_bench,
            args=(self.source, self.data_dir, self.progress_interval, fault, announced(), theirs),
            name="labsat-bench",
        )
        process.start()
        theirs.close()
        channel = Channel(ours, self._answer, on_close=self._lost, ordered=True)
        self._process, self._channel = process, channel
        channel.start()
        if not self._ready.wait(OPEN_TIMEOUT_S) or self._failure is not None:
            failure = self._failure
            self._closing = True
            channel.close()
            process.join(10)
            if failure is not None:
                raise failure
            raise BenchProcessError(f"the bench process for {self.source} did not open its bench")
        self._opening = False

    def start(self) -> None:
        self._started = True
        self._call("start")

    def shutdown(self, timeout: float) -> bool:
        """Stop the worker (see :meth:`BenchWorker.shutdown`), close the bench and end the bench process."""
        self._closing = True
        stopped = True
        try:
            stopped = bool(self._send("shutdown", timeout))
        except LabsatError as exc:
            log.error("bench %s: shutting its process down failed: %s", self.name, exc)
        if self._channel is not None:
            self._channel.close()
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()
        return stopped

    # -- the worker's methods, called in the bench process ------------------------------------------

    def enqueue(self, job_id: str) -> None:
        self._call("enqueue", job_id)

    def status(self) -> tuple[str | None, list[str]]:
        if self._restarting is not None:
            return None, []  # the dead process's job is interrupted; queued jobs wait for the fresh one
        job, queued = self._call("status")
        return job, list(queued)

    def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        return bool(self._call("cancel", job_id, reason))

    def pause(self, job_id: str) -> bool:
        return bool(self._call("pause", job_id))

    def unpause(self, job_id: str) -> bool:
        return bool(self._call("unpause", job_id))

    def emergency_stop(self) -> list[str]:
        return list(self._call("emergency_stop"))

    def guard_status(self) -> GuardStatus:
        if self._restarting is not None:
            return GuardStatus("faulted", None, self._restarting)
        answer: GuardStatus = self._call("guard_status")
        return answer

    def refuse_if_faulted(self) -> None:
        self._call("refuse_if_faulted")

    def clear_fault(self) -> str | None:
        answer: str | None = self._call("clear_fault")
        return answer

    def describe(self) -> tuple[dict[str, Any], bool]:
        description, live = self._call("describe")
        return description, bool(live)

    def set_channels(self, values: Mapping[str, float]) -> dict[str, float]:
        answer: dict[str, float] = self._call("set_channels", dict(values))
        return answer

    def outputs(self) -> dict[str, list[float]]:
        answer: dict[str, list[float]] = self._call("outputs")
        return answer

    # -- internals ----------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        """A worker call; refused as faulted (409) while the bench has no working process."""
        restarting = self._restarting
        if restarting is not None:
            raise BenchFaulted(f"{restarting}; try again once it has started")
        return self._send(method, *args)

    def _send(self, method: str, *args: Any) -> Any:
        if self._channel is None:
            raise BenchProcessError(f"bench {self.name!r} has no process")
        return self._channel.call(method, *args)

    def _answer(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call from the bench process: its journal writes, and whether it opened."""
        if method == "ready":
            self._name, self._path = args
            self._ready.set()
            return None
        if method == "failed":
            self._failure = args[0]
            self._ready.set()
            return None
        if method not in JOURNAL_CALLS:
            raise LabsatError(f"a bench process may not call {method!r}")
        return getattr(self.journal, method)(*args, **kwargs)

    def _lost(self) -> None:
        """The pipe ended: expected when shutting down or failing to open; otherwise the bench process died."""
        if self._closing or self._opening or not self._started:
            return
        self._restarting = f"the worker process of bench {self.name!r} ended; a fresh one is driving the bench safe"
        threading.Thread(target=self._restart, name=f"labsat-restart-{self.name}", daemon=True).start()

    def _restart(self) -> None:
        process = self._process
        if process is not None:
            process.join(10)
        code = None if process is None else process.exitcode
        ended = f"the worker process of bench {self.name!r} ended (exit code {code})"
        fault = f"{ended}; a fresh one drove the bench safe. Check the bench, then clear the fault"
        log.error("bench %s: %s", self.name, fault)
        self._restarting = f"{ended}; a fresh one is driving the bench safe"
        for state in HOLDS_BENCH:
            for job in self.journal.jobs(bench=self.name, state=state):
                error = f"the bench's worker process ended (exit code {code}); resume the job to continue"
                self.journal.transition(job.id, JobState.INTERRUPTED, error=error)
        try:
            self.open(fault=fault)
            self._send("start")
            self._restarting = None
            self.restarts += 1
            for job in self.journal.queued():
                if job.bench == self.name:
                    self.enqueue(job.id)
        except LabsatError as exc:
            self._restarting = f"{fault}; a fresh worker process could not be started: {exc}"
            log.error("bench %s: its worker process could not be restarted: %s", self.name, exc)


def _job_threads() -> int:
    """Torch threads for the bench process's jobs: every core but one, which the service keeps for answering.

    Torch's threads wait for each other at every operation, so one of them preempted by the service stalls
    them all: on a small PC a job on every core would slow down many times over whenever clients poll."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def serve_bench(
    source: BenchSource,
    data_dir: Path,
    progress_interval: float,
    fault: str | None,
    role: tuple[str | None, str | None],
    conn: Any,
) -> None:
    """The bench process: open the bench safe, say so, serve the worker's calls until the service goes.

    ``role`` is the service's (command, URL), so the bench's owner record names the service."""
    from labsat.bench import open_bench
    from labsat.jobs import builtin as _builtin  # noqa: F401  (registers labsat's job kinds in this process)
    from labsat.jobs.kinds import register_installed

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(_job_threads())
    gone = threading.Event()
    worker: BenchWorker | None = None

    def answer(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if worker is None or method not in WORKER_CALLS:
            raise LabsatError(f"the bench process has no call {method!r}")
        return getattr(worker, method)(*args, **kwargs)

    command, url = role
    announce(command=f"{command or 'labsat service'} (bench process)", url=url)
    channel = Channel(conn, answer, on_close=gone.set)
    channel.start()
    store = Store(data_dir)
    try:
        register_installed()  # the kinds the service registered from the same entry points
        bench = open_bench(source, data_dir=data_dir)
        bench.safe_state()
    except BaseException as exc:
        channel.call("failed", portable(exc))
        return
    if fault is not None:
        bench.guard.fault(fault)
    worker = BenchWorker(bench, RemoteJournal(channel, store), progress_interval=progress_interval)
    channel.call("ready", bench.name, bench.path)
    gone.wait()  # the pipe ended: after a shutdown the service closes it; otherwise the service died
    if not worker.closed:
        log.error("bench %s: the service went away; halting (outputs safe) and closing the bench", bench.name)
        bench.guard.halt("the service went away")
        worker.shutdown(10.0)
        log.error("bench %s: outputs safe, bench closed", bench.name)
