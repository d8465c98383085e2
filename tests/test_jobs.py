"""The job framework without HTTP: state machine, journal, queue, cancel, pause, resume, recovery, halt."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from service_helpers import GATES, engine_fixture, new_engine, wait_for  # noqa: F401  (a fixture)

from labsat.bench import Bench, builtin_bench_path, open_bench
from labsat.errors import Halted, LabsatError
from labsat.jobs.engine import DataDirInUse, JobEngine
from labsat.jobs.journal import JobJournal
from labsat.jobs.model import FINAL, TRANSITIONS, InvalidTransition, JobState, Progress, check_transition
from labsat.jobs.worker import BenchBusy
from labsat.store import Store

BENCH = "sim-mrr"


def _h0(engine: JobEngine) -> float:
    return engine.outputs(BENCH)["heaters"][0]


def _all_safe(engine: JobEngine) -> bool:
    return all(value == 0.0 for values in engine.outputs(BENCH).values() for value in values)


def _ended(engine: JobEngine, job_id: str) -> JobState:
    return wait_for(lambda: engine.get(job_id).final and engine.get(job_id).state, what=f"job {job_id} to end")


def test_the_state_machine_allows_only_its_transitions() -> None:
    check_transition("j", JobState.QUEUED, JobState.RUNNING)
    check_transition("j", JobState.RUNNING, JobState.PAUSED)
    check_transition("j", JobState.INTERRUPTED, JobState.QUEUED)
    for old, new in [(JobState.QUEUED, JobState.SUCCEEDED), (JobState.SUCCEEDED, JobState.QUEUED)]:
        with pytest.raises(InvalidTransition, match=f"is {old}; it cannot become {new}"):
            check_transition("j", old, new)
    assert set(TRANSITIONS) == set(JobState)
    assert all(JobState.QUEUED in TRANSITIONS[state] for state in FINAL - {JobState.SUCCEEDED})


def test_the_journal_numbers_events_and_outlives_its_process(data_dir: Path) -> None:
    journal = JobJournal(Store(data_dir))
    job = journal.create("steps", "b", {"steps": 1}, "alice")
    journal.transition(job.id, JobState.RUNNING)
    journal.progress(job.id, Progress(phase="p", done=1, total=2))
    journal.append(job.id, "metric", {"step": 1, "loss": 0.5})

    again = JobJournal(Store(data_dir))  # what a restarted service sees
    events = again.events(job.id)
    assert [(e.seq, e.type) for e in events] == [(1, "state"), (2, "state"), (3, "progress"), (4, "metric")]
    assert again.get(job.id).progress == Progress(phase="p", done=1, total=2)
    assert [j.id for j in again.recover()] == [job.id]
    recovered = again.get(job.id)
    assert recovered.state is JobState.INTERRUPTED and "service stopped" in (recovered.error or "")
    assert again.last_seq(job.id) == 5
    assert again.events(job.id, after=4)[0].data["state"] == "interrupted"


def test_a_second_job_queues_and_manual_writes_wait_for_the_bench(engine: JobEngine) -> None:
    gate = GATES["queue"] = threading.Event()
    first = engine.submit("steps", None, {"gate": "queue"}, submitted_by="a")
    second = engine.submit("steps", BENCH, {"steps": 2}, submitted_by="b")
    wait_for(lambda: engine.get(first.id).state is JobState.RUNNING, what="the first job to start")
    assert engine.get(second.id).state is JobState.QUEUED
    status = engine.bench_status(BENCH)
    assert (status.job, status.queued) == (first.id, [second.id])
    with pytest.raises(BenchBusy, match=f"job {first.id} holds bench"):
        engine.set_channels(BENCH, {"heaters.h1": 1.0})
    gate.set()
    assert _ended(engine, second.id) is JobState.SUCCEEDED
    done_first, done_second = engine.get(first.id), engine.get(second.id)
    assert done_first.state is JobState.SUCCEEDED and done_first.finished <= done_second.started
    assert _all_safe(engine)  # every job leaves the bench safe
    assert engine.set_channels(BENCH, {"heaters.h1": 1.0}) == {"heaters.h1": 1.0}


def test_cancel_stops_a_running_job_at_its_next_checkpoint_and_leaves_the_bench_safe(engine: JobEngine) -> None:
    GATES["cancel"] = threading.Event()
    running = engine.submit("steps", None, {"gate": "cancel", "gate_at": 1})
    queued = engine.submit("steps", None, {})
    wait_for(lambda: _h0(engine) == 1.0, what="the first step's write")
    assert engine.cancel(queued.id).state is JobState.CANCELLED  # a queued job goes at once
    engine.cancel(running.id)
    assert _ended(engine, running.id) is JobState.CANCELLED
    assert engine.get(running.id).error == "cancelled"
    assert _all_safe(engine)
    with pytest.raises(InvalidTransition, match="already cancelled"):
        engine.cancel(running.id)


def test_pause_holds_the_bench_in_its_safe_state_until_resumed(engine: JobEngine) -> None:
    gate = GATES["pause"] = threading.Event()
    job = engine.submit("steps", None, {"gate": "pause", "gate_at": 1})
    wait_for(lambda: _h0(engine) == 1.0, what="the first step's write")
    engine.pause(job.id)
    wait_for(lambda: engine.get(job.id).state is JobState.PAUSED, what="the pause")
    assert _all_safe(engine)
    with pytest.raises(BenchBusy):  # a paused job still holds the bench
        engine.set_channels(BENCH, {"heaters.h1": 1.0})
    with pytest.raises(InvalidTransition, match="only a running job can pause"):
        engine.pause(job.id)
    gate.set()
    engine.resume(job.id)
    assert _ended(engine, job.id) is JobState.SUCCEEDED
    states = [e.data["state"] for e in engine.events(job.id, types=("state",))]
    assert states == ["queued", "running", "paused", "running", "succeeded"]


def test_a_resumed_job_continues_where_it_stopped(engine: JobEngine) -> None:
    gate = GATES["resume"] = threading.Event()
    job = engine.submit("steps", None, {"steps": 4, "gate": "resume", "gate_at": 2})
    wait_for(lambda: (engine.get(job.id).progress or Progress(done=0)).done == 2, what="two steps")
    engine.cancel(job.id)
    assert _ended(engine, job.id) is JobState.CANCELLED
    gate.set()
    again = engine.resume(job.id)
    assert (again.state, again.attempt) == (JobState.QUEUED, 2)
    assert _ended(engine, job.id) is JobState.SUCCEEDED
    assert engine.get(job.id).result == {"steps": 4, "first": 2}
    with pytest.raises(InvalidTransition, match="succeeded"):
        engine.resume(job.id)


def test_a_failing_job_fails_with_the_reason_and_the_bench_safe(engine: JobEngine) -> None:
    job = engine.submit("steps", None, {"steps": 1, "volts": 99.0})
    assert _ended(engine, job.id) is JobState.FAILED
    assert "heaters.h0 = 99 refused" in (engine.get(job.id).error or "")
    assert _all_safe(engine)


def test_metrics_become_arrays_and_a_plot(engine: JobEngine, data_dir: Path) -> None:
    job = engine.submit("steps", None, {"steps": 3})
    assert _ended(engine, job.id) is JobState.SUCCEEDED
    folder = data_dir / "artifacts" / "jobs" / job.id
    assert (folder / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(folder / "metrics.npz") as arrays:
        assert arrays["value"].tolist() == [0.0, 1.0, 4.0] and arrays["step"].tolist() == [1.0, 2.0, 3.0]


def test_emergency_stop_cancels_the_job_and_the_queue(engine: JobEngine) -> None:
    GATES["estop"] = threading.Event()
    running = engine.submit("steps", None, {"gate": "estop", "gate_at": 1})
    queued = engine.submit("steps", None, {})
    wait_for(lambda: _h0(engine) == 1.0, what="the first step's write")
    assert sorted(engine.emergency_stop(BENCH)) == sorted([running.id, queued.id])
    assert _all_safe(engine)  # at once, not at the job's next checkpoint
    assert _ended(engine, running.id) is JobState.CANCELLED
    assert engine.get(running.id).error == engine.get(queued.id).error == "emergency stop"
    assert engine.bench_status(BENCH).halted is None  # released once the job left the bench
    assert engine.set_channels(BENCH, {"heaters.h1": 0.5}) == {"heaters.h1": 0.5}
    assert engine.emergency_stop(BENCH) == [] and _all_safe(engine)  # idle: just the safe state


def _hold_the_worker(engine: JobEngine) -> tuple[threading.Event, threading.Thread]:
    """A manual operation that keeps the worker thread busy until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def blocking(bench: Bench) -> None:
        started.set()
        release.wait(30)

    holder = threading.Thread(target=engine.worker(BENCH).call, args=(blocking,), daemon=True)
    holder.start()
    assert started.wait(30)
    return release, holder


def test_emergency_stop_drops_manual_sets_still_waiting(engine: JobEngine) -> None:
    release, holder = _hold_the_worker(engine)
    outcome: list[BaseException | None] = []

    def manual_set() -> None:
        try:
            engine.worker(BENCH).call(lambda bench: bench.set_channels({"heaters.h0": 1.5}))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    setter = threading.Thread(target=manual_set, daemon=True)
    setter.start()
    wait_for(lambda: engine.worker(BENCH)._calls, what="the manual set to queue")
    engine.emergency_stop(BENCH)
    setter.join(30)
    release.set()
    holder.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], Halted) and "dropped" in str(outcome[0])
    assert _h0(engine) == 0.0 and _all_safe(engine)


def test_a_manual_set_that_times_out_waiting_is_withdrawn_not_carried_out_later(engine: JobEngine) -> None:
    release, holder = _hold_the_worker(engine)
    with pytest.raises(LabsatError, match="withdrawn and nothing was written"):
        engine.worker(BENCH).call(lambda bench: bench.set_channels({"heaters.h0": 1.5}), timeout=0.05)
    release.set()
    holder.join(30)
    assert engine.set_channels(BENCH, {"heaters.h1": 0.5}) == {"heaters.h1": 0.5}  # the worker served on
    assert _h0(engine) == 0.0


def test_halt_stops_a_ramp_in_progress_within_one_guard_step(sim_bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    heaters, guard = sim_bench.sources["heaters"], sim_bench.guard
    device = heaters._device
    write = device.write_voltages
    h0: list[float] = []

    def pressing_stop_mid_ramp(positions: np.ndarray, volts: np.ndarray) -> None:
        write(positions, volts)
        written = dict(zip(np.asarray(positions).tolist(), np.asarray(volts).tolist(), strict=True))
        if 0 in written:
            h0.append(written[0])
        if len(h0) == 2:  # second ramp step done: someone presses the emergency stop on another thread
            threading.Thread(target=guard.halt, args=("test stop",)).start()
            wait_for(lambda: guard.halted, what="the halt flag")

    monkeypatch.setattr(device, "write_voltages", pressing_stop_mid_ramp)
    with pytest.raises(Halted, match="halted"):
        heaters.set({"h0": 4.0})  # 0 -> 4 V in eight 0.5 V steps
    wait_for(lambda: float(device.read_voltages()[0]) == 0.0, what="the safe state")
    assert max(h0) == 1.0  # the ramp never took its third step
    with pytest.raises(Halted):
        sim_bench.set_channels({"heaters.h1": 1.0})
    guard.release()
    sim_bench.set_channels({"heaters.h1": 1.0})


def test_restart_marks_stranded_jobs_interrupted_and_drives_benches_safe(data_dir: Path) -> None:
    """What a SIGKILL leaves (a job 'running' in the store, heaters on) as seen by the next service."""
    journal = JobJournal(Store(data_dir))
    stranded = journal.create("steps", BENCH, {"steps": 4})
    journal.transition(stranded.id, JobState.RUNNING)
    journal.remember(stranded.id, {"done": 3})
    waiting = journal.create("steps", BENCH, {"steps": 1})
    with open_bench(builtin_bench_path(), data_dir=data_dir) as bench:
        bench.hold_outputs()
        bench.set_channels({"heaters.h0": 2.0, "heaters.h5": 1.0})  # the dead process's last write

    restarted = new_engine(data_dir)
    interrupted = restarted.start()
    try:
        assert [job.id for job in interrupted] == [stranded.id]
        assert restarted.get(stranded.id).state is JobState.INTERRUPTED
        assert _ended(restarted, waiting.id) is JobState.SUCCEEDED  # the queue survived the crash
        described, live = restarted.describe(BENCH)
        heaters = next(device for device in described["devices"] if device["name"] == "heaters")
        assert live and all(channel["present_v"] == 0.0 for channel in heaters["channels"])
        restarted.resume(stranded.id)
        assert _ended(restarted, stranded.id) is JobState.SUCCEEDED
        assert restarted.get(stranded.id).result == {"steps": 4, "first": 3}
    finally:
        restarted.close()


def test_shutdown_interrupts_the_running_job_and_keeps_the_queue(data_dir: Path) -> None:
    GATES["shutdown"] = threading.Event()
    first = new_engine(data_dir)
    first.start()
    running = first.submit("steps", None, {"gate": "shutdown", "gate_at": 1})
    queued = first.submit("steps", None, {"steps": 1})
    wait_for(lambda: _h0(first) == 1.0, what="the first step's write")
    with pytest.raises(DataDirInUse):
        new_engine(data_dir).start()  # one service per data directory
    first.close()
    journal = JobJournal(Store(data_dir))
    assert journal.get(running.id).state is JobState.INTERRUPTED
    assert journal.get(queued.id).state is JobState.QUEUED
    with open_bench(builtin_bench_path(), data_dir=data_dir) as bench:
        assert not bench.sources["heaters"].read_back().any()  # the instrument itself was left safe
