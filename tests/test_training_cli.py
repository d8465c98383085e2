"""``labsat train`` end to end on the simulated bench: calibration on demand, training, stored model, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labsat.calibration import CalibrationOptions, calibrate_bench
from labsat.cli import app
from labsat.store import Store
from labsat.training import session
from labsat.training.session import load_model

runner = CliRunner()


def _train(*extra: str, method: str = "pat") -> dict:
    result = runner.invoke(app, ["train", "--dataset", "iris", "--method", method, "--epochs", "1", "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


QUICK = CalibrationOptions(sweep_points=48, heater_maps=10, validation_maps=4)
"""A coarse calibration: these tests check the plumbing, not the twin's accuracy."""


def test_train_json_round_trip_stores_the_model_and_resumes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        session, "calibrate_bench", lambda bench, store, **kw: calibrate_bench(bench, store, options=QUICK, **kw)
    )
    first = _train("--seed", "3")
    assert first["calibrated_now"] is True  # the bench had no calibration: one ran and was stored
    assert first["method"] == "pat" and first["dataset"] == "iris" and first["steps"] == 3  # (112 - 17 held out) / 32
    # PAT: one device forward per photonic layer per step (iris 4-16-3: two layers, two tiles each).
    assert first["queries"]["forwards"] == 2 * first["steps"]
    assert first["queries"]["programs"] == 4 * first["steps"]
    assert first["queries"]["bench_time_s"] > 0
    assert 0.0 <= first["test_accuracy_device"] <= 1.0
    assert 0.0 <= first["validation_accuracy_device"] <= 1.0  # the held-out share of the training split, on the chip
    assert len(first["validation_accuracy"]) == 1 == len(first["per_epoch"])
    assert first["per_epoch"][0]["validation_accuracy"] == first["validation_accuracy"][0]
    assert first["nat_noise"] is None  # PAT injects nothing

    store = Store(data_dir)
    net, metadata = load_model(store, first["model"])
    assert net.sizes == (4, 16, 3)
    assert metadata["calibration"] == first["calibration"]
    assert store.get_model(first["model"]).controls.keys() == net.state_dict().keys()

    again = _train("--seed", "3", "--resume")
    assert again["calibrated_now"] is False and again["calibration"] == first["calibration"]
    assert again["queries"] == first["queries"]  # finished run: restored from its checkpoint, no new steps
    assert again["model"] != first["model"]

    nat = _train("--seed", "3", "--noise-repeats", "4", method="nat")
    noise = nat["nat_noise"]  # fitted on the simulated bank, whose controls do not scatter: drift sets the size
    assert noise["fitted"] and noise["repeats"] == 4 and noise["drift_scale"] == 0.5
    assert noise["drift_sigma"] > 10 * noise["control_sigma"] and noise["read_sigma"] > 0
    assert load_model(store, nat["model"])[1]["nat_noise"] == noise  # recorded with the model
    table = runner.invoke(app, ["train", "--dataset", "iris", "--method", "nat", "--epochs", "1", "--seed", "4"])
    assert table.exit_code == 0, table.output
    assert "NAT injected control σ" in table.stdout and "NAT drift σ" in table.stdout


def test_train_rejects_an_unknown_method_without_touching_the_bench() -> None:
    result = runner.invoke(app, ["train", "--method", "sam", "--dataset", "iris"])
    assert result.exit_code == 2
    assert "unknown method 'sam'" in result.stderr
