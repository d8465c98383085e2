"""A training run's settings are declared once (``TrainConfig``): ``labsat train --help``, ``POST /api/jobs``
and the training loop list the same settings, with the same help, defaults and bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import cli_refusal, runner
from fastapi.testclient import TestClient
from service_helpers import auth, new_engine, token_table

from labsat.api.app import create_app
from labsat.api.auth import Scope
from labsat.calibration import CalibrationOptions, D2NNCalibrationOptions, MeshCalibrationOptions
from labsat.cli import app
from labsat.cli.options import SettingsError, build_settings, option_name
from labsat.errors import LabsatError
from labsat.jobs.builtin import CalibrateParams, TrainParams
from labsat.training.config import TrainConfig

RUN_LEVEL = {"dataset", "calibration"}
"""Settings of a request that say where data and twin come from, not how the network trains."""

CLI_ONLY = {"resume", "bench", "data", "as_json"}
"""Options of the command itself (which bench file, output format)."""


def _train_command_options() -> dict[str, Any]:
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    return {parameter.name: parameter for parameter in command.params}


def _train_request_schema(data_dir: Path) -> dict[str, Any]:
    engine = new_engine(data_dir)
    try:
        with TestClient(create_app(engine, token_table())) as client:
            spec = client.get("/openapi.json").json()
    finally:
        engine.close()
    return spec["components"]["schemas"]["TrainParams"]


def test_cli_rest_and_config_list_the_same_training_settings(data_dir: Path) -> None:
    fields = TrainConfig.model_fields
    assert len(fields) >= 29
    options = _train_command_options()
    assert set(options) == set(fields) | RUN_LEVEL | CLI_ONLY
    schema = _train_request_schema(data_dir)
    assert set(schema["properties"]) == set(fields) | RUN_LEVEL
    for name, info in fields.items():
        assert info.description, f"{name} has no description, so neither --help nor the API can explain it"
        assert options[name].help == info.description, name
        assert schema["properties"][name]["description"] == info.description, name
        assert option_name(name) in options[name].opts, name


def test_rest_schema_carries_the_declared_bounds_and_choices(data_dir: Path) -> None:
    properties = _train_request_schema(data_dir)["properties"]
    assert properties["epochs"]["minimum"] == 1 and properties["epochs"]["maximum"] == 100_000
    assert "pat+sat" in properties["method"]["enum"] and "spsa" in str(properties["ascent"])
    assert properties["lr"]["exclusiveMinimum"] == 0


def test_command_line_values_become_the_same_config_a_request_gives(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: list[TrainConfig] = []

    def stop_before_training(bench: object, config: TrainConfig, dataset: object) -> None:
        captured.append(config)
        raise LabsatError("stopped before training")

    monkeypatch.setattr("labsat.cli.train.bench_network", stop_before_training)
    args = ["--method", "sat", "--hidden", "8,4", "--theta-ref", "0.3", "--no-adaptive", "--epochs", "3"]
    result = runner.invoke(app, ["train", *args, "--lr-schedule", "constant"])
    assert result.exit_code == 2 and "stopped before training" in result.stderr
    request = TrainParams.model_validate(
        {"method": "sat", "hidden": [8, 4], "theta_ref": 0.3, "adaptive": False, "epochs": 3, "lr_schedule": "constant"}
    )
    assert captured == [request.config()]
    assert captured[0].hidden == (8, 4) and captured[0].theta_ref == 0.3 and captured[0].rho == TrainConfig().rho


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--method", "sam"], "--method"),
        (["--method", "pat", "--ascent", "fd"], "--ascent"),
        (["--lr", "inf"], "--lr"),
        (["--hidden", "8,0"], "--hidden"),
        (["--theta-ref", "resonance"], "--theta-ref"),
    ],
)
def test_a_refused_value_is_one_line_naming_its_option(args: list[str], named: str) -> None:
    assert named in cli_refusal("train", *args)


def test_requests_are_held_to_the_same_bounds() -> None:
    for params in ({"hidden": [4096] * 10_000}, {"lr": float("inf")}, {"epochs": 10**9}, {"seed": -1}):
        with pytest.raises(ValueError):
            TrainParams.model_validate(params)
    with pytest.raises(SettingsError, match="--batch-size"):
        build_settings(TrainConfig, {"batch_size": 0})


def test_stored_settings_round_trip_and_unknown_keys_are_left_out() -> None:
    config = TrainConfig(method="dat+sat", hidden=(12, 6), theta_ref=0.2, noise_sigma=0.01)
    assert TrainConfig.from_settings({**config.settings(), "retired_setting": 1}) == config
    assert build_settings(TrainConfig, {name: None for name in TrainConfig.model_fields}) == TrainConfig()


def test_an_operate_token_cannot_submit_an_unbounded_run(data_dir: Path) -> None:
    engine = new_engine(data_dir)
    try:
        with TestClient(create_app(engine, token_table())) as client:
            body = {"kind": "train", "params": {"hidden": [4096] * 100}}
            answer = client.post("/api/jobs", json=body, headers=auth(Scope.OPERATE))
            assert answer.status_code == 422 and "hidden" in answer.text
            assert client.get("/api/jobs", headers=auth(Scope.OPERATE)).json() == []
    finally:
        engine.close()


CALIBRATION_MODELS = {
    "options": (CalibrationOptions, ""),
    "mesh": (MeshCalibrationOptions, "mesh"),
    "d2nn": (D2NNCalibrationOptions, "lut"),
}
"""Each calibration request field, its model, and the prefix of its options on ``labsat calibrate``."""


def test_calibrate_options_are_the_request_models_fields() -> None:
    command = typer.main.get_command(app).commands["calibrate"]  # type: ignore[attr-defined]
    options = {option for parameter in command.params for option in parameter.opts}
    request = CalibrateParams.model_json_schema()
    for field, (model, prefix) in CALIBRATION_MODELS.items():
        assert model.__name__ in str(request["properties"][field])
        for name, info in model.model_fields.items():
            assert option_name(name, prefix) in options, (model.__name__, name)
            assert info.description, (model.__name__, name)
    assert {"--only", "--resume", "--bench", "--data-dir", "--json"} <= options


def test_calibrate_passes_what_was_given_and_none_when_nothing_was(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def capture(bench: object, store: object, **given: Any) -> None:
        calls.append(given)
        raise LabsatError("stopped before calibrating")

    monkeypatch.setattr("labsat.cli.calibrate.calibrate_bench", capture)
    assert "stopped before calibrating" in cli_refusal("calibrate", "--sweep-points", "32", "--aggressors", "3,4;5,2")
    assert "stopped before calibrating" in cli_refusal("calibrate")
    first, bare = calls
    assert first["options"] == CalibrationOptions(sweep_points=32, aggressors=[(3, 4), (5, 2)])
    assert (first["mesh"], first["d2nn"]) == (None, None)
    assert (bare["options"], bare["mesh"], bare["d2nn"]) == (None, None, None)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--kernel-size", "4"], "--kernel-size"),
        (["--lut-step", "0"], "--lut-step"),
        (["--mesh-lr", "-1"], "--mesh-lr"),
    ],
)
def test_a_refused_calibration_value_names_its_option(args: list[str], named: str) -> None:
    assert named in cli_refusal("calibrate", *args)
