"""One thread per bench: the only code that drives that bench's hardware while the service runs.

The worker takes jobs from its bench's queue one at a time and runs them on its own thread; manual
operations (a channel set, a live read) are handed to the same thread between jobs, so two writers
never interleave on one instrument. While a job holds the bench, manual operations are refused at
once (:class:`BenchBusy`) rather than queued behind a run that may last hours.

Stopping is cooperative: cancel, pause and shutdown are flags the job meets at its next checkpoint
(every progress report). The emergency stop does not wait for that: it halts the guard, which
refuses the job's very next write and drives the outputs safe (see :meth:`SafetyGuard.halt
<labsat.guard.SafetyGuard.halt>`), then cancels the job and the queue.

Whenever a job leaves ``running`` — paused, finished, failed, cancelled, interrupted — the bench goes
to its safe state before the new state is recorded.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from labsat.describe import describe_bench
from labsat.errors import Halted, LabsatError
from labsat.guard import BenchState
from labsat.jobs.figures import write_metrics
from labsat.jobs.kinds import JobCancelled, JobInterrupted, get_kind
from labsat.jobs.model import EventType, Job, JobEvent, JobState, Progress

if TYPE_CHECKING:
    from labsat.bench import Bench
    from labsat.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


class BenchBusy(LabsatError):
    """A job holds the bench, so a manual operation was refused; nothing was written."""


@dataclass(frozen=True)
class GuardStatus:
    """What the bench's guard says: its state, why it is halted, the latched fault."""

    state: BenchState
    halted: str | None
    fault: str | None


class WorkerJournal(Protocol):
    """What a worker records through: the service's :class:`~labsat.jobs.journal.JobJournal`, in its process
    or reached from a bench's own process (:class:`~labsat.jobs.bench_process.RemoteJournal`)."""

    @property
    def store(self) -> Store: ...

    def transition(
        self, job_id: str, new: JobState, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> Job: ...

    def progress(self, job_id: str, progress: Progress) -> None: ...

    def append(self, job_id: str, type: EventType, data: dict[str, Any]) -> object: ...

    def remember(self, job_id: str, values: Mapping[str, Any]) -> None: ...

    def memo(self, job_id: str) -> dict[str, Any]: ...

    def events(
        self, job_id: str, after: int = 0, limit: int | None = None, types: Sequence[EventType] | None = None
    ) -> list[JobEvent]: ...


@dataclass
class _Call(Generic[T]):
    """A manual operation waiting for the worker thread."""

    fn: Callable[[Bench], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


@dataclass
class _Active:
    """The job on the bench and what has been asked of it."""

    job_id: str
    cancel: str | None = None  # why, once cancelled
    pause: bool = False


class BenchWorker:
    """Runs one bench's queue; every public method may be called from any thread."""

    def __init__(self, bench: Bench, journal: WorkerJournal, *, progress_interval: float = 0.25) -> None:
        self.bench = bench
        self.journal = journal
        self.progress_interval = progress_interval
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._calls: deque[_Call[Any]] = deque()
        self._active: _Active | None = None
        self._stopping = False
        self.closed = False
        """Whether :meth:`shutdown` has closed the bench."""
        self._thread = threading.Thread(target=self._loop, name=f"labsat-bench-{bench.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.bench.name

    # -- control (any thread) -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Interrupt the running job at its next checkpoint and end the thread; False if it did not end in time.

        Queued jobs stay queued (in the store) for the next start of the service. A worker never started (the
        service failed to start) has nothing to end.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def enqueue(self, job_id: str) -> None:
        with self._cond:
            self._queue.append(job_id)
            self._cond.notify_all()

    def status(self) -> tuple[str | None, list[str]]:
        """The job holding the bench (or None) and the queued job ids, in order."""
        with self._cond:
            return (None if self._active is None else self._active.job_id), list(self._queue)

    def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        """Cancel ``job_id`` if it is queued here (at once) or running here (at its next checkpoint)."""
        with self._cond:
            if self._active is not None and self._active.job_id == job_id:
                self._active.cancel = reason
                self._cond.notify_all()
                return True
            if job_id in self._queue:
                self._queue.remove(job_id)
                self.journal.transition(job_id, JobState.CANCELLED, error=reason)
                return True
            return False

    def pause(self, job_id: str) -> bool:
        """Ask the running ``job_id`` to pause at its next checkpoint; False if it is not running here."""
        with self._cond:
            if self._active is None or self._active.job_id != job_id:
                return False
            self._active.pause = True
            return True

    def unpause(self, job_id: str) -> bool:
        """Let a paused (or pausing) ``job_id`` go on; False if it is not held here or was not paused."""
        with self._cond:
            if self._active is None or self._active.job_id != job_id or not self._active.pause:
                return False
            self._active.pause = False
            self._cond.notify_all()
            return True

    def call(self, fn: Callable[[Bench], T], timeout: float = 60.0) -> T:
        """Run ``fn(bench)`` on the worker thread between jobs; :class:`BenchBusy` while a job holds the bench."""
        item: _Call[T] = _Call(fn)
        with self._cond:
            if self._active is not None:
                raise BenchBusy(
                    f"job {self._active.job_id} holds bench {self.name!r}; manual operations wait until it ends "
                    "(cancel it, or use the emergency stop)"
                )
            if self._stopping:
                raise LabsatError(f"bench {self.name!r} is shutting down")
            self._calls.append(item)
            self._cond.notify_all()
        if not item.done.wait(timeout):
            with self._cond:
                queued = any(pending is item for pending in self._calls)
                if queued:  # never started: withdrawn, so a refusal is never followed by the write
                    self._calls = deque(pending for pending in self._calls if pending is not item)
            if queued:
                raise LabsatError(
                    f"bench {self.name!r} did not start the operation within {timeout:g} s; it was withdrawn and "
                    "nothing was written"
                )
            item.done.wait()  # already on the bench (a ramp in progress): its own answer, not a guess
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    # -- the bench, for the engine (any thread) -----------------------------------------------------

    @property
    def path(self) -> str:
        return self.bench.path

    def guard_status(self) -> GuardStatus:
        guard = self.bench.guard
        return GuardStatus(guard.state, guard.halted, guard.faulted)

    def refuse_if_faulted(self) -> None:
        self.bench.guard.refuse_if_faulted()

    def clear_fault(self) -> str | None:
        """The administrator's clear of a latched fault; returns the fault that was lifted (None: there was none)."""
        return self.bench.guard.clear_fault()

    def describe(self) -> tuple[dict[str, Any], bool]:
        """The bench's description and whether it is live (read now) or from the guard's record (a job holds it)."""
        try:
            return self.call(describe_bench), True
        except BenchBusy:
            return describe_bench(self.bench, live=False), False

    def set_channels(self, values: Mapping[str, float]) -> dict[str, float]:
        """Manual write through the guard, between jobs; :class:`BenchBusy` while a job holds the bench."""

        def write(opened: Bench) -> dict[str, float]:
            opened.set_channels(dict(values))
            return {target: opened.channel_value(target) for target in values}

        return self.call(write)

    def outputs(self) -> dict[str, list[float]]:
        """Every voltage source's outputs as the guard last wrote them (no instrument is asked)."""
        return {name: source.values().tolist() for name, source in self.bench.sources.items()}

    def shutdown(self, timeout: float) -> bool:
        """:meth:`stop`, then the bench safe and closed; a job that does not reach a checkpoint in time is halted
        first, so it cannot write after the safe state. False if it had to be halted."""
        stopped = self.stop(timeout)
        if not stopped:
            log.error("bench %s: its job did not reach a checkpoint within %g s; halting", self.name, timeout)
            self.bench.guard.halt("service shutdown")
        self.bench.close(failed=True)
        self.closed = True
        return stopped

    def emergency_stop(self) -> list[str]:
        """Halt the guard (outputs safe within one guard step), cancel the running job, the queue and every
        manual operation not yet started.

        Runs on the caller's thread on purpose: the worker thread may be deep inside a job. The guard's
        lock orders its safe state after the job's write in progress, and the halt refuses the next.
        Writes are allowed again once the cancelled job has left the bench (or at once when idle).
        """
        with self._cond:  # cancel first, so the job reads the refusal it is about to meet as a cancel
            for pending in self._calls:  # manual operations not yet started never run after the stop
                pending.error = Halted(f"bench {self.name!r}: emergency stop; the manual operation was dropped")
                pending.done.set()
            self._calls.clear()
            stopped = list(self._queue)
            self._queue.clear()
            for job_id in stopped:
                self.journal.transition(job_id, JobState.CANCELLED, error="emergency stop")
            if self._active is not None:
                self._active.cancel = "emergency stop"
                stopped.append(self._active.job_id)
                self._cond.notify_all()
        try:
            self.bench.guard.halt("emergency stop")
        finally:
            with self._cond:
                if self._active is None:
                    self.bench.guard.release()
        return stopped

    # -- the worker thread --------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._calls or self._queue):
                    self._cond.wait()
                if self._stopping:
                    break
                call = self._calls.popleft() if self._calls else None
                if call is None:
                    self._active = _Active(self._queue.popleft())
                active = self._active
            if call is not None:
                _serve(call, self.bench)
            elif active is not None:
                try:
                    self._run_job(active)
                except Exception:  # the store failed under us: keep serving the bench, the job's record may lag
                    log.exception("bench %s: job %s could not be recorded", self.name, active.job_id)
        with self._cond:
            for pending in self._calls:
                pending.error = LabsatError(f"bench {self.name!r} is shutting down")
                pending.done.set()
            self._calls.clear()

    def _run_job(self, active: _Active) -> None:
        try:
            job = self.journal.transition(active.job_id, JobState.RUNNING)
        except LabsatError as exc:  # deleted or changed behind the queue's back: nothing ran, nothing to undo
            log.error("bench %s: cannot start job %s: %s", self.name, active.job_id, exc)
            with self._cond:
                self._active = None
            return
        state, result, error = JobState.SUCCEEDED, None, None
        context = _Context(self, job, active)
        self.bench.note_job(job.id)  # other processes that find the bench in use are told which job holds it
        try:
            self.bench.guard.occupy(job.id)  # a faulted bench refuses here, and the job fails naming the fault
            kind = get_kind(job.kind)
            result = kind.run(context, kind.params.model_validate(job.params))
        except JobCancelled:
            state, error = JobState.CANCELLED, active.cancel
        except JobInterrupted:
            state, error = JobState.INTERRUPTED, "the service stopped; resume the job to continue"
        except Exception as exc:
            if active.cancel is not None:  # e.g. the halted guard refused a write: the cancel caused it
                state, error = JobState.CANCELLED, active.cancel
            else:
                if not isinstance(exc, LabsatError | ValidationError):
                    log.exception("job %s (%s) failed", job.id, job.kind)
                state, error = JobState.FAILED, _message(exc)
        try:
            self.bench.safe_state()
        except Exception as exc:
            log.exception("bench %s: safe state after job %s failed", self.name, job.id)
            state, error = JobState.FAILED, f"{error + '; ' if error else ''}safe state failed: {_message(exc)}"
        context.flush()
        self._write_artifacts(job.id)
        with self._cond:
            try:
                self._finish(job.id, state, error, result)
            finally:  # whatever the store did, the bench is free and writable again (unless faulted)
                self._active = None
                self.bench.guard.vacate()
                self.bench.guard.release()
                self.bench.note_job(None)

    def _finish(self, job_id: str, state: JobState, error: str | None, result: dict[str, Any] | None) -> None:
        """Record the final state; a result the store refuses (not JSON, say) fails the job instead."""
        try:
            self.journal.transition(job_id, state, error=error, result=result)
        except Exception as exc:
            log.exception("job %s: recording its end failed", job_id)
            self.journal.transition(job_id, JobState.FAILED, error=f"recording the job's end failed: {_message(exc)}")

    def _checkpoint(self, active: _Active) -> None:
        """Between two steps of a job: go on, stop, or hold in the safe state while paused."""
        with self._cond:
            self._raise_if_stopped(active)
            if not active.pause:
                return
        self.bench.safe_state()
        self.journal.transition(active.job_id, JobState.PAUSED)
        with self._cond:
            while active.pause and active.cancel is None and not self._stopping:
                self._cond.wait()
            self._raise_if_stopped(active)
        self.journal.transition(active.job_id, JobState.RUNNING)

    def _raise_if_stopped(self, active: _Active) -> None:
        if active.cancel is not None:
            raise JobCancelled(active.cancel)
        if self._stopping:
            raise JobInterrupted()

    def _write_artifacts(self, job_id: str) -> None:
        """The job's metrics as arrays and a plot; a failure here is logged, never the job's fate."""
        try:
            metrics = [event.data for event in self.journal.events(job_id, types=("metric",))]
            if metrics:
                write_metrics(metrics, self.journal.store.artifact_dir("jobs", job_id))
        except Exception:
            log.exception("job %s: writing its metric artifacts failed", job_id)


class _Context:
    """The :class:`~labsat.jobs.kinds.JobContext` of one attempt of one job."""

    def __init__(self, worker: BenchWorker, job: Job, active: _Active) -> None:
        self.job_id = job.id
        self.bench = worker.bench
        self.store: Store = worker.journal.store
        self.resuming = job.attempt > 1
        self.memo: Mapping[str, Any] = worker.journal.memo(job.id)
        self._worker = worker
        self._active = active
        self._last_report = -math.inf
        self._last_phase: str | None = None
        self._pending: Progress | None = None

    def progress(self, done: float, total: float | None, phase: str = "", **values: float | int | str) -> None:
        """Stored at once when the phase changes or ends, otherwise at most every ``progress_interval``;
        a report held back is stored at a later checkpoint, so a job that waits never shows stale progress."""
        self._pending = Progress(phase=phase, done=done, total=total, values=values)
        if phase != self._last_phase or (total is not None and done >= total):
            self.flush()
        self.checkpoint()

    def flush(self) -> None:
        """Store the progress report held back, if any."""
        if self._pending is not None:
            self._worker.journal.progress(self.job_id, self._pending)
            self._last_report, self._last_phase, self._pending = time.monotonic(), self._pending.phase, None

    def metric(self, **values: float | int) -> None:
        self._worker.journal.append(self.job_id, "metric", dict(values))
        self.checkpoint()

    def measured(self, procedure: str, measurement: dict[str, Any]) -> None:
        self._worker.journal.append(self.job_id, "measurement", {"procedure": procedure, **measurement})
        self.checkpoint()

    def log(self, message: str) -> None:
        self._worker.journal.append(self.job_id, "log", {"message": message})

    def remember(self, **values: Any) -> None:
        self._worker.journal.remember(self.job_id, values)
        self.memo = {**self.memo, **values}

    def checkpoint(self) -> None:
        if self._pending is not None and time.monotonic() - self._last_report >= self._worker.progress_interval:
            self.flush()
        self._worker._checkpoint(self._active)

    def artifact_dir(self) -> Path:
        return self.store.artifact_dir("jobs", self.job_id)


def _serve(call: _Call[Any], bench: Bench) -> None:
    try:
        call.result = call.fn(bench)
    except BaseException as exc:  # handed to the caller's thread, which raises it
        call.error = exc
    finally:
        call.done.set()


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LabsatError) else f"{type(exc).__name__}: {exc}"
