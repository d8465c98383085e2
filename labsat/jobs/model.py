"""The job record as everyone sees it (engine, REST API, client) and the rules for changing its state.

A job moves ``queued → running → (paused ⇄ running) → succeeded | failed | cancelled | interrupted``.
``interrupted`` means the service stopped under the job (shutdown, crash, SIGKILL); it and ``cancelled``
and ``failed`` can go back to ``queued`` when the job is resumed, which for resumable kinds continues
from the job's last checkpoint. Every change is checked against :data:`TRANSITIONS`, so no caller can
move a job into a state the worker does not expect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from labsat.errors import LabsatError


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


FINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})
"""States a job leaves only by being resumed."""

HOLDS_BENCH = frozenset({JobState.RUNNING, JobState.PAUSED})
"""States in which the job owns its bench: manual writes are refused."""

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.PAUSED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED}
    ),
    JobState.PAUSED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.INTERRUPTED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
    JobState.INTERRUPTED: frozenset({JobState.QUEUED}),
}


class InvalidTransition(LabsatError):
    """A request that the job's present state does not allow (cancel a finished job, pause a queued one)."""


def check_transition(job_id: str, old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"job {job_id} is {old}; it cannot become {new}")


EventType = Literal["state", "progress", "metric", "measurement", "log"]
"""``measurement``: one measurement and its fit as a live view draws it (a ring's heater sweep), see
:meth:`~labsat.jobs.kinds.JobContext.measured`."""


class Progress(BaseModel):
    """How far a job is: ``done`` of ``total`` units of its present ``phase``, with the latest values."""

    phase: str = Field("", description="What the job is doing, e.g. 'train' or a calibration procedure.")
    done: float = Field(description="Units done in this phase.")
    total: float | None = Field(None, description="Units in this phase; null when unknown.")
    values: dict[str, float | int | str] = Field(default_factory=dict, description="Latest numbers, e.g. loss.")


class Job(BaseModel):
    """One job: what was asked, where it stands, what it produced."""

    id: str
    kind: str = Field(description="calibrate, train, evaluate, deploy (or a plugin's kind).")
    bench: str
    state: JobState
    params: dict[str, Any] = Field(description="The validated parameters of the kind.")
    attempt: int = Field(1, description="1 for the first run; +1 each time the job is resumed after it ended.")
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    progress: Progress | None = None
    result: dict[str, Any] | None = Field(None, description="What the kind returned (succeeded jobs).")
    error: str | None = Field(None, description="Why the job failed, was cancelled or interrupted.")
    submitted_by: str | None = Field(None, description="Name of the token that submitted the job.")

    @property
    def final(self) -> bool:
        return self.state in FINAL


class JobEvent(BaseModel):
    """One entry of a job's event log: state changes, progress, metrics, messages; numbered from 1."""

    seq: int
    time: datetime
    type: EventType
    data: dict[str, Any]
