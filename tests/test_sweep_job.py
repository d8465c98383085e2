"""A sweep submitted over REST: the spec validated like a YAML file's, cells run and stored, results as artifacts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from service_helpers import (  # noqa: F401  (fixtures)
    TOKENS,
    WAIT_S,
    calibrated_fixture,
    calibrated_template_fixture,
    new_engine,
    serving,
)
from write_recorder import RawWriteRecorder

from labsat.api.auth import Scope
from labsat.client import ApiError, LabsatClient
from labsat.jobs.builtin import MAX_SWEEP_CELLS
from labsat.jobs.model import JobState
from labsat.sweep.engines import run_sweep
from labsat.sweep.spec import SweepSpec

SPEC: dict[str, Any] = {
    "name": "rest",
    "dataset": "iris",
    "base": {"epochs": 1, "hidden": [4], "batch_size": 32, "method": "bp"},
    "axes": {"seed": [0, 1]},
    "measure": ["accuracy", "forwards"],
}


def _client(url: str) -> LabsatClient:
    return LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S)


def test_a_sweep_job_runs_its_cells_and_leaves_a_netcdf_with_units_and_settings(data_dir: Path) -> None:
    with serving(new_engine(data_dir)) as url, _client(url) as lab:
        job = lab.wait(lab.submit("sweep", {"spec": SPEC}).id, timeout=4 * WAIT_S)
        assert job.state is JobState.SUCCEEDED, job.error
        result = job.result or {}
        assert (result["cells"], result["ok"], result["failed"], result["skipped"]) == (2, 2, 0, 0)
        cells = [e.data for e in lab.events(job.id) if e.type == "progress" and e.data.get("phase") == "cells"]
        assert cells[-1]["done"] == cells[-1]["total"] == 2
        assert f"jobs/{job.id}/results.nc" in result["artifacts"]
        data = xr.open_dataset(io.BytesIO(lab.download("jobs", job.id, "results.nc")), engine="h5netcdf")
        assert data["accuracy"].dims == ("seed",) and list(data["seed"].values) == [0, 1]
        assert data["accuracy"].attrs["units"] == "fraction of the test split"
        assert (data["accuracy"].values >= 0).all() and (data["accuracy"].values <= 1).all()
        assert '"name": "rest"' in data.attrs["settings"]
        assert b"seed" in lab.download("jobs", job.id, "results.csv").splitlines()[0]


def test_a_sweep_on_the_service_bench_trains_every_cell_there_through_its_guard(calibrated: Path) -> None:
    """Engine ``bench``: a sweep on hardware. Every cell's device forwards are the service's own bench's."""
    engine = new_engine(calibrated)
    spec = {**SPEC, "base": {**SPEC["base"], "method": "pat"}, "measure": ["accuracy", "forwards", "bench_time"]}
    with serving(engine) as url, _client(url) as lab:
        recorder = RawWriteRecorder(engine.worker("sim-mrr").bench)  # below the guard of the service's bench
        job = lab.wait(lab.submit("sweep", {"spec": spec, "engine": "bench"}).id, timeout=4 * WAIT_S)
        assert job.state is JobState.SUCCEEDED, job.error
        assert (job.result or {})["ok"] == 2
        data = xr.open_dataset(io.BytesIO(lab.download("jobs", job.id, "results.nc")), engine="h5netcdf")
        assert (data["forwards"].values > 0).all() and (data["bench_time"].values > 0).all()
        assert recorder.counts["raw voltage writes"] > 0 and recorder.violations == []
        assert len(lab.calibrations()) == 1  # the cells used the service's calibration and made none


@pytest.mark.parametrize(
    ("spec", "engine", "named"),
    [
        ({**SPEC, "measure": ["accuracy", "drift"]}, "bench", "drift need a simulated chip"),
        ({**SPEC, "bench": "sim-mzi.yaml"}, "bench", "the spec names 'sim-mzi.yaml'"),
    ],
)
def test_a_sweep_on_the_service_bench_takes_only_what_hardware_can_measure(
    data_dir: Path, spec: dict[str, Any], engine: str, named: str
) -> None:
    with serving(new_engine(data_dir)) as url, _client(url) as lab:
        with pytest.raises(ApiError) as refused:
            lab.submit("sweep", {"spec": spec, "engine": engine})
        assert refused.value.status == 422 and named in str(refused.value)
        assert lab.jobs() == []


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({**SPEC, "axes": {"epoch": [1]}}, "'epoch' is not a training setting"),
        ({**SPEC, "axes": {"lr": [-1.0]}}, "axes.lr[0]"),
        ({**SPEC, "axes": {"seed": list(range(MAX_SWEEP_CELLS + 1))}}, f"at most {MAX_SWEEP_CELLS}"),
        ({**SPEC, "dataset": "../../etc/passwd"}, "dataset"),
    ],
)
def test_a_sweep_job_that_cannot_run_is_refused_naming_the_key(
    data_dir: Path, spec: dict[str, Any], named: str
) -> None:
    with serving(new_engine(data_dir)) as url, _client(url) as lab:
        with pytest.raises(ApiError) as refused:
            lab.submit("sweep", {"spec": spec})
        assert refused.value.status == 422
        assert named in str(refused.value)
        assert lab.jobs() == []


class _Stop(BaseException):
    """What a job's checkpoint raises when the job is cancelled."""


def test_a_sweep_stopped_between_cells_keeps_what_it_stored_and_a_resume_skips_it(tmp_path: Path) -> None:
    spec = SweepSpec.model_validate({**SPEC, "axes": {"seed": [0, 1, 2]}})
    seen: list[dict[str, int]] = []

    def stop_after_the_first(counts: dict[str, int], total: int) -> None:
        seen.append(counts)
        raise _Stop

    with pytest.raises(_Stop):
        run_sweep(spec, tmp_path, engine="inline", show_progress=False, on_cell=stop_after_the_first)
    assert seen == [{"skipped": 0, "ok": 1, "failed": 0}]
    counts = run_sweep(spec, tmp_path, engine="inline", show_progress=False)
    assert counts == {"skipped": 1, "ok": 2, "failed": 0}
