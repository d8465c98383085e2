"""Jobs and their events in the store, so that they outlive the process that ran them.

The journal is the only writer of the two tables and serialises its writes with one lock; readers
(REST handlers) never take it. Unfinished jobs are also kept in memory as snapshots: the service
answers ``GET /jobs/{id}`` for a running job from there, without a query, which is what keeps dozens
of polling clients from slowing the job they watch.

Every change of state, every progress report and every metric becomes an event numbered per job
(``seq`` from 1), which is what the SSE stream replays and follows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labsat.jobs.model import (
    FINAL,
    HOLDS_BENCH,
    EventType,
    InvalidTransition,
    Job,
    JobEvent,
    JobState,
    Progress,
    check_transition,
)
from labsat.jobs.tables import EventRow, JobRow
from labsat.store import Base, NotFound, Store, full_id, new_id, utcnow


class JobJournal:
    """Create, change and read jobs and their events; safe to share between threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        tables = [Base.metadata.tables[row.__tablename__] for row in (JobRow, EventRow)]
        Base.metadata.create_all(store.engine, tables=tables)
        self._lock = threading.RLock()
        self._active: dict[str, Job] = {}
        self._seq: dict[str, int] = {}

    # -- writing ------------------------------------------------------------------------------------

    def create(self, kind: str, bench: str, params: Mapping[str, Any], submitted_by: str | None = None) -> Job:
        """A new queued job."""
        row = JobRow(
            id=new_id(),
            kind=kind,
            bench=bench,
            state=JobState.QUEUED.value,
            params=dict(params),
            memo={},
            attempt=1,
            created=utcnow(),
            submitted_by=submitted_by,
        )
        with self._writing() as session:
            session.add(row)
            session.flush()
            self._event(session, row.id, "state", {"state": JobState.QUEUED.value})
        return self._snapshot(row)

    def transition(
        self,
        job_id: str,
        new: JobState,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> Job:
        """Move a job to ``new`` (checked against the state machine) and log it as a ``state`` event.

        Going back to ``queued`` (a resume) starts a new attempt: the old error, result and progress go.
        """
        with self._writing() as session:
            row = self._row(session, job_id)
            old = JobState(row.state)
            check_transition(job_id, old, new)
            now = utcnow()
            row.state = new.value
            if new is JobState.QUEUED:
                row.attempt += 1
                row.started = row.finished = row.error = row.result = row.progress = None
            if old is JobState.QUEUED and new is JobState.RUNNING:
                row.started = now
            if new in FINAL:
                row.finished = now
            if error is not None:
                row.error = error
            if result is not None:
                row.result = result
            data: dict[str, Any] = {"state": new.value, "attempt": row.attempt}
            if error is not None:
                data["error"] = error
            self._event(session, job_id, "state", data)
        return self._snapshot(row)

    def progress(self, job_id: str, progress: Progress) -> None:
        """Record where a running job is (on the job and as a ``progress`` event)."""
        with self._writing() as session:
            row = self._row(session, job_id)
            row.progress = progress.model_dump()
            self._event(session, job_id, "progress", row.progress)
        self._snapshot(row)

    def append(self, job_id: str, type: EventType, data: dict[str, Any]) -> JobEvent:
        """Add an event (``metric``, ``log``) to a job's log."""
        with self._writing() as session:
            self._row(session, job_id)
            return self._event(session, job_id, type, data)

    def remember(self, job_id: str, values: Mapping[str, Any]) -> None:
        """Keep ``values`` with the job for its next attempt (e.g. which calibration a training run uses)."""
        with self._writing() as session:
            row = self._row(session, job_id)
            row.memo = {**row.memo, **values}

    def recover(self) -> list[Job]:
        """At service start: every job left running or paused by a dead service becomes ``interrupted``."""
        with self.store.session() as session:
            stranded = session.scalars(select(JobRow.id).where(JobRow.state.in_([s.value for s in HOLDS_BENCH])))
            ids = list(stranded)
        return [
            self.transition(job_id, JobState.INTERRUPTED, error="the service stopped while the job held the bench")
            for job_id in ids
        ]

    def delete(self, job_id: str) -> None:
        """Forget a finished job and its events (its artifacts are the caller's to remove)."""
        with self._writing() as session:
            row = self._row(session, job_id)
            if JobState(row.state) not in FINAL:
                raise InvalidTransition(f"job {job_id} is {row.state}; cancel it before deleting it")
            session.execute(delete(EventRow).where(EventRow.job_id == job_id))
            session.delete(row)
            self._seq.pop(job_id, None)

    # -- reading ------------------------------------------------------------------------------------

    def peek(self, job_id: str) -> Job | None:
        """An unfinished job from memory; None when it is finished or unknown (ask :meth:`get`)."""
        return self._active.get(job_id)

    def get(self, job_id: str) -> Job:
        """A job; an unfinished one from memory, without a query."""
        job = self._active.get(job_id)
        if job is not None:
            return job
        with self.store.session() as session:
            row = self._row(session, job_id)
            return self._active.get(row.id) or _job(row)  # a prefix of an unfinished job: still from memory

    def memo(self, job_id: str) -> dict[str, Any]:
        with self.store.session() as session:
            return dict(self._row(session, job_id).memo)

    def jobs(
        self,
        *,
        bench: str | None = None,
        state: JobState | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs, newest first, optionally filtered."""
        query = select(JobRow).order_by(JobRow.created.desc()).limit(limit)
        if bench is not None:
            query = query.where(JobRow.bench == bench)
        if state is not None:
            query = query.where(JobRow.state == state.value)
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        with self.store.session() as session:
            return [_job(row) for row in session.scalars(query)]

    def queued(self) -> list[Job]:
        """Queued jobs in the order they were submitted."""
        query = select(JobRow).where(JobRow.state == JobState.QUEUED.value).order_by(JobRow.created)
        with self.store.session() as session:
            return [_job(row) for row in session.scalars(query)]

    def events(
        self, job_id: str, after: int = 0, limit: int | None = None, types: Sequence[EventType] | None = None
    ) -> list[JobEvent]:
        """A job's events with ``seq > after`` (optionally of some types only), oldest first."""
        query = select(EventRow).where(EventRow.job_id == job_id, EventRow.seq > after).order_by(EventRow.seq)
        if types is not None:
            query = query.where(EventRow.type.in_(types))
        if limit is not None:
            query = query.limit(limit)
        with self.store.session() as session:
            return [_event(row) for row in session.scalars(query)]

    def last_seq(self, job_id: str) -> int:
        """Number of the job's newest event (0: none); from memory once known, so followers can poll it cheaply."""
        known = self._seq.get(job_id)
        if known is not None:
            return known
        with self.store.session() as session:
            found = _max_seq(session, job_id)
        return self._seq.setdefault(job_id, found)  # a writer that got there first knows better

    # -- internals ----------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._lock, self.store.session() as session:
            yield session

    @staticmethod
    def _row(session: Session, job_id: str) -> JobRow:
        row = session.get(JobRow, full_id(session, JobRow.id, job_id, "job"))
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return row

    def _event(self, session: Session, job_id: str, type: EventType, data: dict[str, Any]) -> JobEvent:
        if job_id not in self._seq:
            self._seq[job_id] = _max_seq(session, job_id)
        self._seq[job_id] += 1
        row = EventRow(job_id=job_id, seq=self._seq[job_id], time=utcnow(), type=type, data=data)
        session.add(row)
        return _event(row)

    def _snapshot(self, row: JobRow) -> Job:
        """The committed row as a :class:`Job`, kept in memory while unfinished."""
        job = _job(row)
        if job.final:
            self._active.pop(job.id, None)
        else:
            self._active[job.id] = job
        return job


def _max_seq(session: Session, job_id: str) -> int:
    return int(session.scalar(select(func.max(EventRow.seq)).where(EventRow.job_id == job_id)) or 0)


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        bench=row.bench,
        state=JobState(row.state),
        params=row.params,
        attempt=row.attempt,
        created=row.created,
        started=row.started,
        finished=row.finished,
        progress=None if row.progress is None else Progress.model_validate(row.progress),
        result=row.result,
        error=row.error,
        submitted_by=row.submitted_by,
    )


def _event(row: EventRow) -> JobEvent:
    return JobEvent(seq=row.seq, time=row.time, type=row.type, data=row.data)
