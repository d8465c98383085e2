"""Benches in worker processes of their own (what ``labsat serve`` runs): jobs, manual operations and the
emergency stop through the pipe; SIGKILL drills of a bench process and of the service itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (  # noqa: F401  (fixtures)
    WAIT_S,
    calibrated_fixture,
    calibrated_template_fixture,
    new_engine,
    running,
    wait_for,
)

from labsat.bench import builtin_bench_path, open_bench
from labsat.errors import BenchFaulted, LabsatError
from labsat.jobs.bench_process import BenchProcess
from labsat.jobs.engine import Isolation, JobEngine
from labsat.jobs.journal import JobJournal
from labsat.jobs.model import JobEvent, JobState
from labsat.store import Store

BENCH = "sim-mrr"
SHORT = {"dataset": "iris", "epochs": 2, "method": "pat", "hidden": [4], "batch_size": 16}
LONG = {**SHORT, "epochs": 40}
"""A run long enough to be killed in the middle (several seconds), resumable from its checkpoints."""


@pytest.fixture(name="engine")
def engine_fixture(calibrated: Path) -> Iterator[JobEngine]:
    yield from running(new_engine(calibrated, isolation="process"))


def _runner(engine: JobEngine) -> BenchProcess:
    runner = engine.worker(BENCH)
    assert isinstance(runner, BenchProcess)
    return runner


def _ended(engine: JobEngine, job_id: str, timeout: float = WAIT_S) -> JobState:
    return wait_for(lambda: engine.get(job_id).final and engine.get(job_id).state, timeout, f"job {job_id} to end")


def _contiguous(engine: JobEngine, job_id: str) -> None:
    """Every event of the job, numbered 1, 2, … with none missing or twice: nothing was lost."""
    numbers = [event.seq for event in engine.events(job_id)]
    assert numbers == list(range(1, len(numbers) + 1))


def _past_epoch_3(events: list[JobEvent]) -> bool:
    """Epoch 3 ran, so a checkpoint of epoch 2 or later is on disk."""
    return any(event.type == "metric" and event.data["epoch"] >= 3 for event in events)


def _resumed_from_a_checkpoint(events: list[JobEvent], epochs: int) -> None:
    """The second attempt's epochs go on from a checkpoint, not from 1, and reach the last one."""
    resumed = max(i for i, event in enumerate(events) if event.type == "state" and event.data["state"] == "queued")
    second = [event.data["epoch"] for event in events[resumed:] if event.type == "metric"]
    assert resumed > 0 and second[0] > 1 and second[-1] == epochs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_job_runs_in_the_bench_process_and_the_service_answers_for_it(engine: JobEngine) -> None:
    runner = _runner(engine)
    assert runner.pid is not None and runner.pid != os.getpid() and _alive(runner.pid)
    job = engine.submit("train", None, SHORT)
    assert _ended(engine, job.id) is JobState.SUCCEEDED, engine.get(job.id).error
    assert engine.get(job.id).result["model"]  # stored by the bench process, read by the service
    _contiguous(engine, job.id)
    assert engine.set_channels(BENCH, {"heaters.h0": 1.5}) == {"heaters.h0": 1.5}
    assert engine.outputs(BENCH)["heaters"][0] == 1.5
    described, live = engine.describe(BENCH)
    assert live and {device["name"] for device in described["devices"]} >= {"heaters", "detectors"}
    with pytest.raises(LabsatError, match=r"heaters\.h0"):
        engine.set_channels(BENCH, {"heaters.h0": 99.0})  # the guard's refusal crosses the pipe, named
    assert engine.emergency_stop(BENCH) == []
    assert not any(engine.outputs(BENCH)["heaters"])
    assert engine.bench_status(BENCH).state == "idle"


def test_sigkill_of_a_bench_process_interrupts_its_job_and_a_fresh_process_drives_the_bench_safe(
    engine: JobEngine,
) -> None:
    runner = _runner(engine)
    killed = runner.pid
    assert killed is not None
    job = engine.submit("train", None, LONG)
    wait_for(lambda: _past_epoch_3(engine.events(job.id)), what="the job's third epoch")
    os.kill(killed, signal.SIGKILL)
    assert _ended(engine, job.id) is JobState.INTERRUPTED
    assert "worker process ended" in (engine.get(job.id).error or "")
    deadline = time.monotonic() + WAIT_S
    while runner.restarts == 0 and time.monotonic() < deadline:  # the fresh process opening: faulted, and 409s
        assert engine.bench_status(BENCH).state == "faulted"
        try:
            engine.describe(BENCH)
        except BenchFaulted as exc:
            assert f"the worker process of bench '{BENCH}' ended" in str(exc)
        time.sleep(0.01)
    wait_for(lambda: runner.restarts == 1, what="the bench process to be restarted")
    assert runner.pid != killed and not _alive(killed)
    status = engine.bench_status(BENCH)
    assert status.state == "faulted" and "ended" in (status.fault or "")
    assert not any(value for values in engine.outputs(BENCH).values() for value in values)
    with pytest.raises(LabsatError, match="faulted"):
        engine.submit("train", None, SHORT)  # refused until an administrator has looked
    assert engine.clear_fault(BENCH) is not None
    _contiguous(engine, job.id)
    assert engine.resume(job.id).attempt == 2  # queued again, on the fresh bench process
    assert _ended(engine, job.id) is JobState.SUCCEEDED, engine.get(job.id).error
    _contiguous(engine, job.id)
    _resumed_from_a_checkpoint(engine.events(job.id), LONG["epochs"])


SERVICE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from labsat.bench import builtin_bench_path
    from labsat.jobs.engine import Isolation, JobEngine
    from labsat.store import Store

    if __name__ == "__main__":
        engine = JobEngine(Store(Path(sys.argv[1])), [builtin_bench_path()], isolation="process")
        engine.start()
        job = engine.submit("train", None, {params})
        print(job.id, engine.worker("sim-mrr").pid, flush=True)
        time.sleep(600)
    """
)


def test_sigkill_of_the_service_leaves_the_bench_safe_and_the_job_resumable(calibrated: Path, tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(SERVICE.replace("{params}", repr(LONG)))
    log = tmp_path / "service.log"
    with log.open("w") as stream:
        service = subprocess.Popen(
            [sys.executable, str(script), str(calibrated)], stdout=subprocess.PIPE, stderr=stream, text=True
        )
    try:
        assert service.stdout is not None
        job_id, bench_pid = service.stdout.readline().split()
        journal = JobJournal(Store(calibrated))
        wait_for(lambda: _past_epoch_3(journal.events(job_id)), what="the job's third epoch")
        service.send_signal(signal.SIGKILL)
        service.wait(WAIT_S)
        wait_for(lambda: not _alive(int(bench_pid)), what="the bench process to end after the service")
    finally:
        service.kill()
    assert "outputs safe, bench closed" in log.read_text()
    with open_bench(builtin_bench_path(), data_dir=calibrated) as bench:  # its lock was released
        assert not bench.sources["heaters"].read_back().any()  # and the instrument itself was left safe
    restarted = new_engine(calibrated, isolation="process")
    assert [job.id for job in restarted.start()] == [job_id]  # left running by the dead service: interrupted
    try:
        _contiguous(restarted, job_id)
        assert restarted.resume(job_id).attempt == 2
        assert _ended(restarted, job_id) is JobState.SUCCEEDED, restarted.get(job_id).error
        _contiguous(restarted, job_id)
        _resumed_from_a_checkpoint(restarted.events(job_id), LONG["epochs"])
    finally:
        restarted.close(timeout=WAIT_S)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_service_that_cannot_start_closes_the_benches_it_opened(
    data_dir: Path, write_bench: Any, isolation: Isolation
) -> None:
    """A second bench of the same name: the start is refused, naming it, and the first bench is closed again."""
    first, second = builtin_bench_path(), write_bench(lambda data: None)
    engine = JobEngine(Store(data_dir), [first, second], isolation=isolation)
    with pytest.raises(LabsatError, match="bench names must differ"):
        engine.start()
    with open_bench(first, data_dir=data_dir) as bench:  # its lock was released: nothing holds it
        assert not bench.sources["heaters"].read_back().any()
