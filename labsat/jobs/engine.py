"""The service's core: every bench opened once, one worker each, and every job request routed to them.

The REST API and the Python API both go through :class:`JobEngine`; neither touches a bench directly.
Starting the engine is where crash recovery happens:

1. the data directory is locked, so two services can never drive the same benches and store;
2. jobs a dead service left ``running`` or ``paused`` become ``interrupted`` (their events and
   checkpoints stay; resuming continues from the last checkpoint);
3. every bench is driven to its safe state — after a crash (SIGKILL, power cut) the hardware may hold
   whatever the dead process last wrote;
4. jobs still ``queued`` are queued again on their benches, in submission order.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel

from labsat.bench import open_bench
from labsat.benchfile import BenchFile
from labsat.errors import LabsatError
from labsat.guard import BenchState
from labsat.jobs import builtin as _builtin  # noqa: F401  (registers labsat's job kinds)
from labsat.jobs.bench_process import BenchProcess
from labsat.jobs.journal import JobJournal
from labsat.jobs.kinds import get_kind
from labsat.jobs.model import HOLDS_BENCH, EventType, InvalidTransition, Job, JobEvent, JobState
from labsat.jobs.runner import BenchRunner
from labsat.jobs.worker import BenchWorker
from labsat.store import ARTIFACTS, NotFound, Store

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one service per data directory is then up to the user
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = "service.lock"

Isolation = Literal["thread", "process"]
"""Where a bench's worker runs: on a thread of this process, or in a bench process of its own
(:mod:`labsat.jobs.bench_process`; what ``labsat serve`` runs)."""


class DataDirInUse(LabsatError):
    """Another labsat service already runs on this data directory."""


@dataclass(frozen=True)
class BenchStatus:
    """A bench as the service sees it: who holds it, what waits, whether it is halted or faulted."""

    name: str
    file: str
    job: str | None
    queued: list[str]
    halted: str | None
    state: BenchState = "idle"
    fault: str | None = None


class JobEngine:
    """Benches, workers and jobs of one service process."""

    def __init__(
        self,
        store: Store,
        benches: Sequence[str | Path | BenchFile],
        *,
        progress_interval: float = 0.25,
        isolation: Isolation = "thread",
    ) -> None:
        self.store = store
        self.journal = JobJournal(store)
        self.progress_interval = progress_interval
        self.isolation = isolation
        self._bench_files = list(benches)
        self._workers: dict[str, BenchRunner] = {}
        self._lock: IO[str] | None = None
        self._started = False

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> list[Job]:
        """Lock, recover, open every bench in its safe state, start the workers; returns the interrupted jobs.

        Starting a started engine does nothing (returns no jobs): ``labsat serve`` starts it before the web
        server, so that a bench that cannot open is one error line, and the app's start-up finds it running.
        """
        if self._started:
            return []
        self._lock_data_dir()
        opened: list[BenchRunner] = []
        try:
            for source in self._bench_files:
                runner = self._open(source)
                opened.append(runner)
                if sum(other.name == runner.name for other in opened) > 1:
                    raise LabsatError(f"two bench files name a bench {runner.name!r}; bench names must differ")
            interrupted = self.journal.recover()
            self._workers = {runner.name: runner for runner in opened}
            for job in self.journal.queued():
                if job.bench in self._workers:
                    self._workers[job.bench].enqueue(job.id)
        except BaseException:
            for runner in opened:
                runner.shutdown(0.0)
            self._workers = {}
            self._unlock_data_dir()
            raise
        for worker in self._workers.values():
            worker.start()
        self._started = True
        for job in interrupted:
            log.warning("job %s (%s on %s) was interrupted by the last shutdown", job.id, job.kind, job.bench)
        return interrupted

    def close(self, timeout: float = 30.0) -> None:
        """Interrupt running jobs at their next checkpoint, put every bench in its safe state, unlock."""
        for worker in self._workers.values():
            worker.shutdown(timeout)  # a job that misses its checkpoint is halted: no write after the safe state
        self._workers = {}
        self._started = False
        self._unlock_data_dir()

    # -- benches ------------------------------------------------------------------------------------

    @property
    def bench_names(self) -> list[str]:
        return list(self._workers)

    def worker(self, bench: str) -> BenchRunner:
        try:
            return self._workers[bench]
        except KeyError:
            raise NotFound(f"this service has no bench {bench!r} (it has: {', '.join(self._workers)})") from None

    def bench_status(self, bench: str) -> BenchStatus:
        worker = self.worker(bench)
        job, queued = worker.status()
        guard = worker.guard_status()
        state = guard.state
        if state == "idle" and job is not None:  # paused: the job holds the bench between its runs
            state = "busy"
        return BenchStatus(bench, worker.path, job, queued, guard.halted, state, guard.fault)

    def clear_fault(self, bench: str) -> str | None:
        """The administrator's clear of a latched fault; returns the fault that was lifted (None: there was none)."""
        return self.worker(bench).clear_fault()

    def describe(self, bench: str) -> tuple[dict[str, Any], bool]:
        """The bench's description and whether it is live (read now) or from the guard's record (a job holds it)."""
        return self.worker(bench).describe()

    def set_channels(self, bench: str, values: Mapping[str, float]) -> dict[str, float]:
        """Manual write through the guard, on the bench's worker; :class:`BenchBusy` while a job holds it."""
        return self.worker(bench).set_channels(values)

    def outputs(self, bench: str) -> dict[str, list[float]]:
        """Every voltage source's outputs as the guard last wrote them (no instrument is asked)."""
        return self.worker(bench).outputs()

    def emergency_stop(self, bench: str) -> list[str]:
        """Outputs safe now, the running job and the queue cancelled; returns the cancelled job ids."""
        return self.worker(bench).emergency_stop()

    # -- jobs ---------------------------------------------------------------------------------------

    def submit(
        self, kind: str, bench: str | None, params: Mapping[str, Any] | BaseModel, submitted_by: str | None = None
    ) -> Job:
        """Validate and queue a job; ``bench`` may be omitted when the service has only one."""
        job_kind = get_kind(kind)
        worker = self._pick(bench)
        worker.refuse_if_faulted()  # named now, not when the job would have started
        raw = params.model_dump() if isinstance(params, BaseModel) else params
        validated = job_kind.params.model_validate(raw)
        job = self.journal.create(kind, worker.name, validated.model_dump(mode="json"), submitted_by)
        worker.enqueue(job.id)
        return job

    def get(self, job_id: str) -> Job:
        return self.journal.get(job_id)

    def peek(self, job_id: str) -> Job | None:
        """An unfinished job without touching the database (None: use :meth:`get`)."""
        return self.journal.peek(job_id)

    def jobs(
        self, *, bench: str | None = None, state: JobState | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs, newest first, optionally filtered."""
        return self.journal.jobs(bench=bench, state=state, kind=kind, limit=limit)

    def events(
        self, job_id: str, after: int = 0, limit: int | None = None, types: Sequence[EventType] | None = None
    ) -> list[JobEvent]:
        job_id = self.journal.get(job_id).id  # NotFound for an unknown job rather than an empty list
        return self.journal.events(job_id, after, limit, types)

    def last_seq(self, job_id: str) -> int:
        """Number of the job's newest event; from memory after the first call, so followers may poll it."""
        return self.journal.last_seq(job_id)

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once, a running or paused one at its next checkpoint."""
        job = self.journal.get(job_id)
        job_id = job.id  # the whole id, when a unique prefix named the job
        if job.final:
            raise InvalidTransition(f"job {job_id} is already {job.state}")
        worker = self._workers.get(job.bench)
        if (worker is None or not worker.cancel(job_id)) and job.state is JobState.QUEUED:
            self.journal.transition(job_id, JobState.CANCELLED, error="cancelled")  # a bench this service lacks
        return self.journal.get(job_id)

    def pause(self, job_id: str) -> Job:
        """Ask a running job to pause at its next checkpoint (it then waits in the safe state)."""
        job = self.journal.get(job_id)
        job_id = job.id
        worker = self._workers.get(job.bench)
        if job.state is not JobState.RUNNING or worker is None or not worker.pause(job_id):
            raise InvalidTransition(f"job {job_id} is {job.state}; only a running job can pause")
        return self.journal.get(job_id)

    def resume(self, job_id: str) -> Job:
        """A paused job goes on; a cancelled, failed or interrupted one of a resumable kind is queued again
        and continues from its last checkpoint."""
        job = self.journal.get(job_id)
        job_id = job.id
        if job.state in HOLDS_BENCH:
            if not self.worker(job.bench).unpause(job_id):
                raise InvalidTransition(f"job {job_id} is running, not paused")
            return self.journal.get(job_id)
        if not job.final:
            raise InvalidTransition(f"job {job_id} is {job.state}; only a paused or ended job can be resumed")
        if not get_kind(job.kind).resumable:
            raise InvalidTransition(f"{job.kind} jobs cannot be resumed; submit a new one")
        worker = self.worker(job.bench)
        job = self.journal.transition(job_id, JobState.QUEUED)
        worker.enqueue(job_id)
        return job

    def delete(self, job_id: str) -> None:
        """Forget an ended job: its record, its events and its own artifacts (models it made stay)."""
        job_id = self.journal.get(job_id).id
        self.journal.delete(job_id)
        shutil.rmtree(self.store.root / ARTIFACTS / "jobs" / job_id, ignore_errors=True)

    # -- internals ----------------------------------------------------------------------------------

    def _open(self, source: str | Path | BenchFile) -> BenchRunner:
        """The bench of ``source`` open in its safe state, with its worker (not started yet)."""
        if self.isolation == "process":
            runner = BenchProcess(source, self.store.root, self.journal, progress_interval=self.progress_interval)
            runner.open()
            return runner
        bench = open_bench(source, data_dir=self.store.root)
        try:
            bench.safe_state()
        except BaseException:
            bench.close(failed=True)
            raise
        return BenchWorker(bench, self.journal, progress_interval=self.progress_interval)

    def _pick(self, bench: str | None) -> BenchRunner:
        if bench is not None:
            return self.worker(bench)
        if len(self._workers) == 1:
            return next(iter(self._workers.values()))
        raise LabsatError(f"this service has several benches; name one ({', '.join(self._workers)})")

    def _lock_data_dir(self) -> None:
        path = self.store.root / LOCK_FILE
        handle = path.open("w")
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise DataDirInUse(f"another labsat service is using the data directory {self.store.root}") from None
        self._lock = handle

    def _unlock_data_dir(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None
