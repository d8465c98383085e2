"""Jobs: submit, list, look at, follow (SSE), cancel, pause, resume, delete.

The submission body is a union over the registered job kinds, discriminated by ``kind``, so the OpenAPI
document shows every kind's parameters and a malformed field gets a 422 that names it. The union is
built when the app is (plugins register kinds before that), which is why this module builds its
router in a function and does not postpone annotations.
"""

import asyncio
from collections.abc import AsyncIterable
from typing import Annotated, Any, Literal, Union

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field, create_model

from labsat.api.auth import AdminAccess, OperateAccess, ReadAccess
from labsat.api.deps import EngineDep
from labsat.jobs.engine import JobEngine
from labsat.jobs.kinds import JobKind, registered
from labsat.jobs.model import FINAL, EventType, Job, JobEvent, JobState

FOLLOW_POLL_S = 0.1
"""How often a stream checks for new events (an in-memory counter; the database is read only when it moved)."""

BATCH = 500
MAX_SEQ = 2**62
"""Largest event number a client may name: the store keeps sequence numbers as 64-bit integers."""


def _event_id(header: str | None) -> int:
    """An SSE ``Last-Event-ID`` as an event number; anything else (a reconnecting client's junk) counts as 0."""
    if header is None or not (header.isascii() and header.isdigit()) or len(header) > 18:
        return 0
    return int(header)


class JobRequestBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bench: str | None = Field(None, description="Bench to run on; may be omitted when the service has one.")


def _request_model(name: str, kind: JobKind[Any]) -> type[JobRequestBase]:
    """The request model of one job kind: ``kind`` fixed to its name, ``params`` its parameter model."""
    tag: Any = Literal[name]  # a literal type made at run time, one per registered kind
    return create_model(
        f"{''.join(part.title() for part in name.split('_'))}JobRequest",
        __base__=JobRequestBase,
        __doc__=kind.description,
        kind=(tag, Field(description=kind.description)),
        params=(kind.params, Field(default_factory=kind.params)),
    )


def job_request_type() -> Any:
    """``{"kind": ..., "bench": ..., "params": {...}}`` for every registered kind, discriminated by ``kind``."""
    variants = [_request_model(name, kind) for name, kind in sorted(registered().items())]
    if len(variants) == 1:
        return variants[0]
    return Annotated[Union[tuple(variants)], Field(discriminator="kind")]  # noqa: UP007  (a runtime-built union)


async def _existing_job(job_id: str, request: Request) -> Job:
    """The job, from memory while it is unfinished (no query, no thread hop: polling clients are many).

    Also resolves a stream's job before the stream starts, so an unknown id is a 404, not a broken stream.
    The engine is read off the app directly: one dependency less on the hottest route.
    """
    engine: JobEngine = request.app.state.engine
    job = engine.peek(job_id)
    if job is None:
        job = await run_in_threadpool(engine.get, job_id)
    return job


def build_router(job_request: Any) -> APIRouter:
    """The jobs router for a submission type from :func:`job_request_type`."""
    router = APIRouter(prefix="/jobs", tags=["jobs"])

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Submit a job")
    def submit(who: OperateAccess, request: Annotated[job_request, Body()], engine: EngineDep) -> Job:
        """Queue a job on a bench. It runs when the bench's worker is free; one job at a time per bench."""
        return engine.submit(request.kind, request.bench, request.params, who.name)

    @router.get("", summary="List jobs")
    def list_jobs(
        who: ReadAccess,
        engine: EngineDep,
        bench: str | None = None,
        state: JobState | None = None,
        kind: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Job]:
        """Newest first."""
        return engine.jobs(bench=bench, state=state, kind=kind, limit=limit)

    @router.get("/{job_id}", summary="Get a job")
    async def get_job(who: ReadAccess, job: Annotated[Job, Depends(_existing_job)]) -> Job:
        """State, progress and result; an unfinished job is answered from memory, without a database query."""
        return job

    @router.get("/{job_id}/events", summary="A job's events")
    def job_events(
        who: ReadAccess,
        job_id: str,
        engine: EngineDep,
        after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Only events with seq > after.")] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        type: Annotated[list[EventType] | None, Query(description="Only these event types.")] = None,
    ) -> list[JobEvent]:
        return engine.events(job_id, after, limit, type)

    @router.get("/{job_id}/stream", response_class=EventSourceResponse, summary="Follow a job (SSE)")
    async def stream(
        who: ReadAccess,
        job: Annotated[Job, Depends(_existing_job)],
        engine: EngineDep,
        after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Replay events with seq > after first.")] = 0,
        last_event_id: Annotated[str | None, Header(description="Set by SSE clients when they reconnect.")] = None,
    ) -> AsyncIterable[ServerSentEvent]:
        """``text/event-stream`` of the job's events (SSE ``event`` = type, ``id`` = seq, ``data`` = the event
        as JSON): first the stored ones, then new ones as they happen. The stream ends after the event
        that puts the job in a final state."""
        seen = max(after, _event_id(last_event_id))
        await run_in_threadpool(engine.last_seq, job.id)  # loads the counter; from now on it is in memory
        ended = job.final and seen >= engine.last_seq(job.id)
        while not ended:
            if engine.last_seq(job.id) <= seen:
                await asyncio.sleep(FOLLOW_POLL_S)
                continue
            for event in await run_in_threadpool(engine.events, job.id, seen, BATCH):
                yield ServerSentEvent(data=event, event=event.type, id=str(event.seq))
                seen = event.seq
                ended = event.type == "state" and event.data.get("state") in FINAL
            ended = ended and seen >= engine.last_seq(job.id)

    @router.post("/{job_id}/cancel", summary="Cancel a job")
    def cancel(who: OperateAccess, job_id: str, engine: EngineDep) -> Job:
        """A queued job is cancelled at once; a running or paused one at its next checkpoint, after which the
        bench goes to its safe state."""
        return engine.cancel(job_id)

    @router.post("/{job_id}/pause", summary="Pause a running job")
    def pause(who: OperateAccess, job_id: str, engine: EngineDep) -> Job:
        """The job stops at its next checkpoint and waits with the bench in its safe state; it keeps the
        bench (manual sets still get 409) until it is resumed or cancelled."""
        return engine.pause(job_id)

    @router.post("/{job_id}/resume", summary="Resume a job")
    def resume(who: OperateAccess, job_id: str, engine: EngineDep) -> Job:
        """A paused job goes on. A cancelled, failed or interrupted calibrate or train job is queued again
        and continues from its last checkpoint (a new attempt of the same job, same events log)."""
        return engine.resume(job_id)

    @router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an ended job")
    def delete_job(who: AdminAccess, job_id: str, engine: EngineDep) -> Response:
        """Removes the job, its events and its own artifacts; models and calibrations it produced stay."""
        engine.delete(job_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
