"""The service over real HTTP: uvicorn on 127.0.0.1 (a thread, or a process for the SIGKILL test).

Training jobs use iris with one batch per epoch, so an epoch is one optimizer step.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from service_helpers import (  # noqa: F401  (fixtures)
    GATES,
    TOKENS,
    WAIT_S,
    calibrated_fixture,
    calibrated_template_fixture,
    new_engine,
    serving,
    wait_for,
)

from labsat.api.auth import Scope
from labsat.client import ApiError, LabsatClient
from labsat.jobs.model import JobState

BENCH = "sim-mrr"
TRAIN = {"dataset": "iris", "method": "pat", "batch_size": 112}
PNG = b"\x89PNG\r\n\x1a\n"


def _client(url: str, scope: Scope = Scope.OPERATE) -> LabsatClient:
    return LabsatClient(url, TOKENS[scope], timeout=WAIT_S)


def test_a_train_job_over_http_streams_its_events_and_leaves_results_and_plots(calibrated: Path) -> None:
    with serving(new_engine(calibrated)) as url, _client(url) as lab:
        job = lab.submit("train", {**TRAIN, "epochs": 2})
        events = list(lab.stream(job.id, timeout=WAIT_S))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.data["state"] for e in events if e.type == "state"] == ["queued", "running", "succeeded"]
        metrics = [e.data for e in events if e.type == "metric"]
        assert [m["epoch"] for m in metrics] == [1, 2]
        assert all(set(m) == {"epoch", "loss", "validation_accuracy", "forwards", "bench_time_s"} for m in metrics)
        assert all(m["forwards"] > 0 and m["bench_time_s"] > 0 and 0 <= m["validation_accuracy"] <= 1 for m in metrics)
        last = [e.data for e in events if e.type == "progress"][-1]
        assert last["phase"] == "train" and last["done"] == last["total"] == 2

        done = lab.job(job.id)
        assert done.state is JobState.SUCCEEDED and done.submitted_by == "operate"
        result = done.result or {}
        assert result["steps"] == 2 and result["calibrated_now"] is False
        assert 0.0 <= result["test_accuracy_device"] <= 1.0

        files = {entry.path: entry for entry in lab.artifacts("jobs", job.id)}
        assert {"metrics.png", "metrics.npz"} <= set(files)
        assert lab.download("jobs", job.id, "metrics.png").startswith(PNG)
        model = lab.model(result["model"])
        assert model.metadata["dataset"] == "iris" and model.bench == BENCH
        assert [a.path for a in lab.artifacts("models", model.id)] == ["controls.pt"]
        assert result["artifacts"] == [f"models/{model.id}/controls.pt"]

        deployed = lab.wait(lab.deploy(model.id).id, timeout=WAIT_S)
        assert deployed.state is JobState.SUCCEEDED, deployed.error
        assert deployed.result is not None and deployed.result["test_samples"] == 38
        assert lab.calibrations(BENCH)[0].complete

        evaluation = lab.submit("evaluate", {"models": [model.id], "sweeps": ["drift"], "landscape_steps": 3})
        evaluated = lab.wait(evaluation.id, timeout=WAIT_S)
        assert evaluated.state is JobState.SUCCEEDED, evaluated.error
        assert f"jobs/{evaluation.id}/report.html" in (evaluated.result or {})["artifacts"]
        assert b"<html" in lab.download("jobs", evaluation.id, "report.html")[:200].lower()


def test_two_clients_race_for_one_bench_one_runs_the_other_queues(data_dir: Path) -> None:
    GATES["race"] = threading.Event()
    with serving(new_engine(data_dir)) as url:
        start = threading.Barrier(2)
        submitted: list[str] = []

        def submit() -> None:
            with _client(url) as lab:
                start.wait(WAIT_S)
                submitted.append(lab.submit("steps", {"gate": "race"}).id)

        racers = [threading.Thread(target=submit) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(WAIT_S)
        with _client(url) as lab:
            running = wait_for(
                lambda: [j.id for j in lab.jobs() if j.state is JobState.RUNNING], what="one job to hold the bench"
            )
            assert len(running) == 1 and running[0] in submitted
            (waiting,) = set(submitted) - set(running)
            assert lab.job(waiting).state is JobState.QUEUED
            bench = lab.bench(BENCH)
            assert (bench.state, bench.job, bench.queued, bench.live) == ("busy", running[0], [waiting], False)
            with pytest.raises(ApiError) as refused:
                lab.set_channels(BENCH, {"heaters.h3": 1.0})
            assert refused.value.status == 409 and running[0] in str(refused.value.detail)
            GATES["race"].set()
            assert lab.wait(waiting, timeout=WAIT_S).state is JobState.SUCCEEDED
            assert lab.job(running[0]).finished <= lab.job(waiting).started
            assert lab.set_channels(BENCH, {"heaters.h3": 1.0}) == {"heaters.h3": 1.0}


def _phase_done(lab: LabsatClient, job_id: str, phase: str) -> float:
    progress = lab.job(job_id).progress
    return progress.done if progress is not None and progress.phase == phase else 0.0


def test_emergency_stop_during_training_makes_outputs_safe_and_cancels_the_job(calibrated: Path) -> None:
    engine = new_engine(calibrated)
    with serving(engine) as url, _client(url) as lab:
        job = lab.submit("train", {**TRAIN, "epochs": 500, "batch_size": 8})
        wait_for(lambda: _phase_done(lab, job.id, "train") >= 3, what="three training steps")
        heaters = engine.worker(BENCH).bench.sources["heaters"]._device
        stopped = lab.emergency_stop(BENCH)
        writes_at_stop = len(heaters.history)
        assert stopped.cancelled == [job.id]
        assert all(v == 0.0 for values in stopped.outputs.values() for v in values)  # safe when the call returns
        assert not heaters.read_voltages().any()
        ended = lab.wait(job.id, timeout=WAIT_S)
        assert (ended.state, ended.error) == (JobState.CANCELLED, "emergency stop")
        assert all(not write.volts.any() for write in heaters.history[writes_at_stop:])  # nothing live after it
        assert lab.bench(BENCH).state == "idle"
        assert lab.set_channels(BENCH, {"heaters.h0": 0.5}) == {"heaters.h0": 0.5}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(data_dir: Path, tokens: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = ["serve", "--port", str(port), "--tokens", str(tokens), "--data-dir", str(data_dir)]
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "labsat", *command], stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, what="the service to start")
    return process, url


def _heaters_in_sim_state(data_dir: Path) -> np.ndarray:
    return np.array(json.loads((data_dir / "sim-state" / f"{BENCH}.heaters.json").read_text())["volts"])


def test_sigkill_during_training_leaves_the_bench_safe_and_the_restart_interrupts_and_resumes(
    calibrated: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n" + "".join(f"  - {{name: {s.label}, scope: {s.label}, token: {TOKENS[s]}}}\n" for s in Scope)
    )
    log = tmp_path / "serve.log"
    process, url = _serve(calibrated, tokens, log)
    try:
        with _client(url) as lab:
            job = lab.submit("train", {**TRAIN, "epochs": 12})
            for event in lab.stream(job.id, timeout=WAIT_S):
                if event.type == "metric" and event.data["epoch"] >= 3:
                    break  # epoch 3 ran, so the checkpoint of epoch 2 or later is on disk
            process.send_signal(signal.SIGKILL)
            process.wait(WAIT_S)
        # The bench process saw its service go: it halted, drove the heaters safe and closed the bench.
        wait_for(lambda: not _heaters_in_sim_state(calibrated).any(), what="the bench process to drive it safe")
        (checkpoint,) = (calibrated / "checkpoints").glob("*/checkpoint.pt")
        saved_epoch = int(torch.load(checkpoint, weights_only=True)["epoch"])
        assert 2 <= saved_epoch < 12

        process, url = _serve(calibrated, tokens, log)
        with _client(url) as lab:
            interrupted = lab.job(job.id)
            assert interrupted.state is JobState.INTERRUPTED and "service stopped" in (interrupted.error or "")
            kept = lab.events(job.id)
            assert [e.seq for e in kept] == list(range(1, len(kept) + 1))
            assert [e.data["epoch"] for e in kept if e.type == "metric"][:3] == [1, 2, 3]
            assert checkpoint.exists()
            bench = lab.bench(BENCH)
            heaters = next(device for device in bench.devices if device.name == "heaters")
            assert bench.live and all(channel.present_v == 0.0 for channel in heaters.channels)
            assert not _heaters_in_sim_state(calibrated).any()

            assert lab.resume(job.id).attempt == 2
            resumed = list(lab.stream(job.id, after=kept[-1].seq, timeout=WAIT_S))
            first = next(e for e in resumed if e.type == "progress")
            assert first.data["values"]["epoch"] == saved_epoch + 1 and first.data["done"] == saved_epoch + 1
            assert [e.data["epoch"] for e in resumed if e.type == "metric"] == list(range(saved_epoch + 1, 13))
            finished = lab.job(job.id)
            assert finished.state is JobState.SUCCEEDED and (finished.result or {})["steps"] == 12
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
