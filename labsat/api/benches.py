"""Benches: what they are made of, what they output, manual channel sets and the emergency stop."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path

from labsat.api.auth import AdminAccess, OperateAccess, ReadAccess
from labsat.api.deps import EngineDep
from labsat.api.schemas import (
    BenchDetail,
    BenchSummary,
    ChannelSet,
    ChannelSetResult,
    EmergencyStopResult,
    FaultCleared,
)
from labsat.jobs.engine import JobEngine

router = APIRouter(prefix="/benches", tags=["benches"])

BenchName = Annotated[str, Path(description="Bench name (from its bench file).")]

_STOP_THREADS = anyio.CapacityLimiter(4)
"""Emergency stops get threads of their own: they must never queue behind slow requests."""


def _summary(engine: JobEngine, bench: str) -> BenchSummary:
    status = engine.bench_status(bench)
    return BenchSummary(
        name=status.name,
        file=status.file,
        state=status.state,
        job=status.job,
        queued=status.queued,
        halted=status.halted,
        fault=status.fault,
    )


@router.get("", summary="List benches")
def list_benches(who: ReadAccess, engine: EngineDep) -> list[BenchSummary]:
    return [_summary(engine, name) for name in engine.bench_names]


@router.get("/{bench}", summary="Devices, channels, limits and present values")
def get_bench(who: ReadAccess, bench: BenchName, engine: EngineDep) -> BenchDetail:
    """Read live from the instruments when the bench is idle; while a job holds it, the guard's record of
    the outputs is returned instead (``live: false``), because reading would interleave with the job."""
    described, live = engine.describe(bench)
    return BenchDetail(
        **_summary(engine, bench).model_dump(),
        live=live,
        power_budget_mw=described["power_budget_mw"],
        power_used_mw=described["power_used_mw"],
        devices=described["devices"],
    )


@router.put("/{bench}/channels", summary="Set channels manually")
def set_channels(who: OperateAccess, bench: BenchName, body: ChannelSet, engine: EngineDep) -> ChannelSetResult:
    """Through the safety guard: all values are checked before any is written, moves are ramped.
    A value outside the limits gets 422 naming the channel, and nothing is written; while a job holds the
    bench the answer is 409."""
    return ChannelSetResult(bench=bench, values=engine.set_channels(bench, body.values))


@router.post("/{bench}/stop", summary="Emergency stop")
async def emergency_stop(who: OperateAccess, bench: BenchName, engine: EngineDep) -> EmergencyStopResult:
    """Refuse every further write, drive all outputs to their safe values (within one guard step of a job's
    write in progress), cancel the running job and every queued one. New jobs may be submitted afterwards."""
    cancelled = await anyio.to_thread.run_sync(engine.emergency_stop, bench, limiter=_STOP_THREADS)
    return EmergencyStopResult(bench=bench, cancelled=cancelled, outputs=engine.outputs(bench))


@router.post("/{bench}/clear-fault", summary="Clear a latched fault (admin)")
def clear_fault(who: AdminAccess, bench: BenchName, engine: EngineDep) -> FaultCleared:
    """After a failed safe state or an output in an unknown state the bench is ``faulted``: only the safe state
    writes, and neither a release nor a new job lifts it. An administrator who has inspected the bench clears it
    here; nothing is written."""
    cleared = engine.clear_fault(bench)
    return FaultCleared(bench=bench, cleared=cleared, state=engine.bench_status(bench).state)
