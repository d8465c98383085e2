"""``labsat evaluate`` end to end on the simulated bench: stored models in, tables, JSON and a report out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import xarray as xr
from typer.testing import CliRunner, Result

from labsat.bench import builtin_bench_path, open_bench
from labsat.calibration import CalibrationOptions, calibrate
from labsat.calibration.export import unit_of
from labsat.cli import app
from labsat.datasets import load_dataset
from labsat.evaluation.sweeps import DRIFT_RANGE_K
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.network import PhotonicNet

runner = CliRunner()
QUICK = CalibrationOptions(
    repeats=2, modulator_points=8, sweep_points=16, heater_maps=10, validation_maps=1, validation_inputs=1
)
"""The coarsest calibration that still builds a twin: these tests check the command, not the fits."""


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A calibrated simulated bench and two stored iris models (random controls) in one data directory."""
    folder = tmp_path_factory.mktemp("evaluate")
    store = Store(folder)
    with open_bench(builtin_bench_path(), data_dir=folder, torch_device=torch.device("cpu")) as bench:
        record = calibrate(bench, store, options=QUICK)
    ids = []
    for seed, method in enumerate(("bp", "sat")):
        net = PhotonicNet((4, 3))
        with torch.no_grad():
            net.theta[0].copy_(torch.rand(3, 4, generator=torch.Generator().manual_seed(seed)) * 3.5 + 0.25)
        config = TrainConfig(method=method, epochs=4, rho=0.3, lr=0.05)
        metadata = {"sizes": [4, 3], "dataset": "iris", "seed": 0, "bench": "sim-mrr", "calibration": record.id}
        metadata |= {"method": method, "epochs": config.epochs, "settings": config.settings()}
        ids.append(store.save_model("sim-mrr", method, net.snapshot(), metadata))
    yield folder, ids
    store.close()


def _evaluate(folder: Path, *args: str) -> Result:
    return runner.invoke(app, ["evaluate", "--data-dir", str(folder), "--landscape-steps", "3", *args])


def test_two_models_side_by_side_as_json_and_report(stored: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, (first, second) = stored
    out = tmp_path / "report"
    result = _evaluate(
        folder,
        "-m",
        first,
        "-m",
        second,
        "--sweep",
        "drift",
        "--sweep",
        "transfer",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == str(out / "report.html")
    assert [m["name"] for m in data["models"]] == [f"bp {first}", f"sat {second}"]
    for model in data["models"]:
        assert set(model["sweeps"]) == {"drift", "transfer"}
        assert len(model["sweeps"]["transfer"]["seeds"]) == 5
        assert model["sharpness"]["lambda_max"] is not None
        assert 0.0 <= model["device_accuracy"] <= 1.0
        assert "losses" not in model["landscape"]  # the grid stays in report.json
        assert "simulated chip (seed 7" in model["metadata"]["evaluated_on"]
        test_samples = len(load_dataset("iris", seed=0).test)
        assert model["metadata"]["test_samples"] == test_samples  # sweeps: the full split
        assert model["metadata"]["hessian_samples"] == min(100, test_samples)  # sharpness: at most 100 of it
        assert model["metadata"]["probes"] == 100
        settings = model["settings"]
        recorded = (settings["dataset"], settings["epochs"], settings["seed"], settings["bench"])
        assert recorded == ("iris", 4, 0, "sim-mrr")
        assert settings["calibration"] in model["metadata"]["evaluated_on"]  # evaluated with its own calibration
        assert settings["other"] == {"lr": 0.05}
        assert model["classes"] == 3 and model["chance"] == pytest.approx(1 / 3)
        assert model["sweeps"]["drift"]["std"] is None  # drift on a chip model is one deterministic seed
    assert [m["settings"]["rho"] for m in data["models"]] == [None, 0.3]  # bp has no SAT radius
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"bp {first}" in page and f"sat {second}" in page
    assert len(json.loads((out / "report.json").read_text())["models"][0]["landscape"]["losses"]) == 3


def test_tables_and_the_report_location_are_printed(stored: tuple[Path, list[str]]) -> None:
    folder, (first, _) = stored
    arguments = ["evaluate", "--data-dir", str(folder), "-m", first, "--sweep", "noise", "--seeds", "1"]
    result = runner.invoke(app, [*arguments, "--landscape-steps", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Summary" in result.stdout and "read-noise σ" in result.stdout
    report = Path(result.stdout.split("report:")[-1].strip())
    assert report.name == "report.html" and report.is_file()
    assert report.parent.parent == folder / "artifacts" / "evaluations"


def test_terminal_table_json_and_report_sweep_one_drift_range(stored: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, (first, _) = stored
    arguments = ["-m", first, "--sweep", "drift", "--out", str(tmp_path / "table")]
    printed = runner.invoke(
        app, ["evaluate", "--data-dir", str(folder), "--landscape-steps", "3", *arguments], env={"COLUMNS": "200"}
    )
    assert printed.exit_code == 0, printed.output
    cells = [line.split("│") for line in printed.stdout.splitlines() if line.count("│") >= 3]
    drift_rows = [float(row[1]) for row in cells if row[1].strip().lstrip("-").replace(".", "").isdigit()]
    as_json = _evaluate(folder, *arguments[:-1], str(tmp_path / "json"), "--json")
    assert as_json.exit_code == 0, as_json.output
    json_values = json.loads(as_json.stdout)["models"][0]["sweeps"]["drift"]["values"]
    report = json.loads((tmp_path / "table" / "report.json").read_text())
    assert drift_rows == json_values == report["models"][0]["sweeps"]["drift"]["values"] == list(DRIFT_RANGE_K)
    page = (tmp_path / "table" / "report.html").read_text(encoding="utf-8")
    assert all(f"<tr><td>{value:g}</td>" in page for value in DRIFT_RANGE_K)
    assert "Run settings" in printed.stdout and "ρ (SAT radius)" in printed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "nosuchmodel"], "no model 'nosuchmodel'"),
        (
            ["-m", "FIRST", "--sweep", "misalignment"],
            "sweep 'misalignment': not run on a 8x8 bank (bench 'sim-mrr'); its sweeps: drift, noise, transfer",
        ),
        (["-m", "FIRST", "--sweep", "tilt"], "unknown sweep 'tilt'"),
        (["-m", "FIRST", "--landscape-steps", "4"], "--landscape-steps must be odd"),
    ],
)
def test_mistakes_are_one_clear_line(stored: tuple[Path, list[str]], args: list[str], message: str) -> None:
    folder, (first, _) = stored
    result = _evaluate(folder, *[first if arg == "FIRST" else arg for arg in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_an_evaluation_exports_as_netcdf_and_csv_with_units_and_settings(
    stored: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, (first, second) = stored
    nc = tmp_path / "evaluation.nc"
    result = _evaluate(folder, "-m", first, "-m", second, "--sweep", "drift", "--export", "nc", "--export-to", str(nc))
    assert result.exit_code == 0, result.output
    with xr.open_dataset(nc, engine="h5netcdf") as data:
        assert list(data["model"].values) == [f"bp {first}", f"sat {second}"]
        assert data["accuracy_drift"].dims == ("model", "drift", "drift_seed")
        assert list(data["drift"].values) == list(DRIFT_RANGE_K) and data["drift"].attrs["units"] == "K"
        assert data["accuracy_drift"].attrs["units"] == "fraction of the test split"
        assert ((data["accuracy_drift"] >= 0) & (data["accuracy_drift"] <= 1)).all()
        assert data["lambda_max"].attrs["units"] == "loss per control unit²"
        assert (data["lambda_max"] >= data["lambda_min"]).all()
        assert json.loads(data.attrs["models"])[f"sat {second}"]["settings"]["dataset"] == "iris"
    csv = tmp_path / "evaluation.csv"
    result = _evaluate(folder, "-m", first, "--sweep", "drift", "--export", "csv", "--export-to", str(csv))
    assert result.exit_code == 0, result.output
    header = csv.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"model", "drift", "drift_seed", "accuracy_drift"} <= set(header)


def test_a_calibration_exports_its_fitted_quantities_with_units(stored: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, _ = stored
    (record,) = Store(folder).list_calibrations(None)
    nc = tmp_path / "calibration.nc"
    result = runner.invoke(
        app, ["calibrations", record.id, "--data-dir", str(folder), "--export", "nc", "--out", str(nc)]
    )
    assert result.exit_code == 0, result.output
    with xr.open_dataset(nc, engine="h5netcdf") as data:
        assert data["heater_resistance_ohm"].dims == ("row", "col")
        assert data["heater_resistance_ohm"].attrs["units"] == "ohm"
        assert data["row_gain_v_per_mw"].attrs["units"] == "V/mW"
        assert data["crosstalk_kernel"].attrs["units"] == "1"
        settings = json.loads(data.attrs["settings"])
        assert settings["bench"] == "sim-mrr" and settings["options"]["sweep_points"] == QUICK.sweep_points
    refused = runner.invoke(app, ["calibrations", "--data-dir", str(folder), "--export", "csv"])
    assert refused.exit_code != 0 and "give its id" in refused.output


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("efficiency_nm_per_mw", "nm/mW"),
        ("resonance_mw", "mW"),
        ("modulator_v_pi", "V"),
        ("dark_volts", "V"),
        ("heaters.resistance_ohm", "ohm"),
        ("depth", "1"),
        ("phase_bias", None),
    ],
)
def test_export_units_come_from_the_quantity_s_name(name: str, unit: str | None) -> None:
    assert unit_of(name) == unit
