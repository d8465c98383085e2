"""A sweep submitted over REST: the spec validated like a YAML file's, cells run and stored, results as artifacts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from service_helpers import TOKENS, WAIT_S, new_engine, serving

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
