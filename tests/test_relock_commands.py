"""Drift re-lock of a stored model from the command line (``labsat relock``) and over REST (the ``relock`` job)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import cli_json, cli_refusal
from service_helpers import TOKENS, WAIT_S, calibrated_fixture, calibrated_template_fixture, new_engine, serving  # noqa: F401  (fixtures)

from labsat.api.auth import Scope
from labsat.client import LabsatClient
from labsat.jobs.kinds import register_installed, registered, unregister
from labsat.jobs.model import JobState
from labsat.simulators.mrr import MRRChipSimulator
from labsat.store import Store
from labsat.training import relock_session
from labsat.training.relock import Relock
from labsat.truth import SIMULATED_CHIP

BENCH = "sim-mrr"
PILOT_TILES = 2
"""Tiles of iris's first layer (4 → 16) on the 8 × 8 bank: each pilot image is measured once per tile."""
TRAIN = ("--dataset", "iris", "--method", "bp-control", "--epochs", "5", "--seed", "0")
DRIFT_K = -1.0
QUICK_SOLVE = ("--solve-steps", "60")
"""Fewer re-solve steps than the default 300: enough for iris's small layers, and seconds, not tens of them."""


def _chip_drifted_by(monkeypatch: pytest.MonkeyPatch, delta_k: float) -> None:
    """Every simulated chip opened from now on is ``delta_k`` kelvin from the temperature it was calibrated at."""
    opened = MRRChipSimulator.__init__

    def drifted(self: MRRChipSimulator, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        self.set_ambient(delta_k)

    monkeypatch.setattr(MRRChipSimulator, "__init__", drifted)


def test_relock_fits_the_drift_with_one_counted_pilot_pass_and_stores_a_model_that_undoes_it(
    calibrated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ("--data-dir", str(calibrated))
    trained = cli_json("train", *TRAIN, *data)
    _chip_drifted_by(monkeypatch, DRIFT_K)
    result = cli_json("relock", trained["model"], "--pilot", "16", "--measure", *QUICK_SOLVE, *data)
    assert result["source_model"] == trained["model"] and result["calibration"] == trained["calibration"]
    assert result["delta_t_k"] == pytest.approx(DRIFT_K, abs=0.05)
    assert result["pilot_queries"]["forwards"] == 1 and result["pilot_queries"]["samples"] == 16 * PILOT_TILES
    assert result["guard_moved"] == 0
    assert result["test_accuracy_device_after"] > result["test_accuracy_device_before"] + 0.1
    assert result["test_accuracy_device_after"] >= trained["test_accuracy_device"] - 0.05
    stored = Store(calibrated).get_model(result["model"])
    assert stored.metadata["relocked_from"] == trained["model"]
    assert stored.metadata["relock"]["delta_t_k"] == result["delta_t_k"]
    again = cli_json("relock", result["model"], "--pilot", "16", *QUICK_SOLVE, *data)
    assert again["source_model"] == trained["model"]  # re-locked from the trained transfer, not the re-locked one
    assert again["delta_t_k"] == pytest.approx(DRIFT_K, abs=0.05) and again["test_accuracy_device_after"] is None


def test_relock_stores_only_controls_the_guard_accepts(calibrated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ("--data-dir", str(calibrated))
    trained = cli_json("train", *TRAIN, *data)
    solved = relock_session.relock

    def out_of_range(*args: Any, **kwargs: Any) -> Relock:  # a re-solve that broke its promise
        found = solved(*args, **kwargs)
        return Relock(found.delta_t_k, tuple(c + 100.0 for c in found.controls), found.pilot, 0.0, 0.0)

    monkeypatch.setattr(relock_session, "relock", out_of_range)
    result = cli_json("relock", trained["model"], *QUICK_SOLVE, *data)
    assert result["guard_moved"] > 0
    controls = torch.load(Store(calibrated).artifact_dir("models", result["model"]) / "controls.pt")
    thetas = [tensor for name, tensor in controls.items() if name.startswith("theta")]
    assert thetas and all(float(t.max()) <= 4.0 for t in thetas)  # the sim bank's heaters: 0 to 4 V


def test_relock_refuses_a_pilot_of_nothing_and_an_unknown_model(calibrated: Path) -> None:
    data = ("--data-dir", str(calibrated))
    assert "nope" in cli_refusal("relock", "nope", *data)
    assert "--pilot" in cli_refusal("relock", "anything", "--pilot", "0", *data)


@pytest.fixture(name="relock_kind")
def relock_kind_fixture() -> Iterator[None]:
    """The ``relock`` kind registered from its entry point, as ``labsat serve`` does; forgotten after the test."""
    assert "relock" in register_installed()
    yield
    unregister("relock")


def test_a_relock_job_over_http_reports_the_fitted_drift_and_the_pilot_queries(
    calibrated: Path, relock_kind: None
) -> None:
    assert "relock" in registered()
    engine = new_engine(calibrated)
    with serving(engine) as url, LabsatClient(url, TOKENS[Scope.OPERATE], timeout=WAIT_S) as lab:
        trained = lab.wait(lab.submit("train", {"dataset": "iris", "method": "bp-control", "epochs": 5}).id)
        assert trained.state is JobState.SUCCEEDED, trained.error
        model = (trained.result or {})["model"]
        engine.worker(BENCH).bench.shared[SIMULATED_CHIP].set_ambient(DRIFT_K)
        params = {"model": model, "pilot": 8, "solve_steps": 60, "measure": True}
        job = lab.wait(lab.submit("relock", params).id, timeout=WAIT_S)
        assert job.state is JobState.SUCCEEDED, job.error
        result = job.result or {}
        assert result["delta_t_k"] == pytest.approx(DRIFT_K, abs=0.05)
        assert result["pilot_queries"]["forwards"] == 1 and result["pilot_queries"]["samples"] == 8 * PILOT_TILES
        assert result["test_accuracy_device_after"] > result["test_accuracy_device_before"]
        assert result["artifacts"] == [f"models/{result['model']}/controls.pt"]
        assert lab.model(result["model"]).metadata["relocked_from"] == model
