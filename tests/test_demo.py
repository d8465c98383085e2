"""The end-to-end demo: calibrate, train, evaluate and report, through the CLI (on iris, one epoch)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from labsat.bench import Bench
from labsat.cli import app
from labsat.cli.demo import comparison_table
from labsat.demo import DemoPlan, run_demo
from labsat.evaluation.sweeps import DRIFT_RANGE_K
from labsat.store import Store


def test_demo_trains_both_methods_and_writes_the_report(sim_bench: Bench, data_dir: Path) -> None:
    store = Store(data_dir)
    stages: list[str] = []
    result = run_demo(sim_bench, store, DemoPlan(dataset="iris", epochs=1), on_stage=stages.append)
    assert stages[0].startswith("calibrating") and "report" in stages[-1]
    table = result.table()
    assert [row["method"] for row in table["rows"]] == ["bp", "pat+sat"]
    for row in table["rows"]:
        assert list(row["accuracy_vs_drift"]) == [f"{k:g}" for k in DRIFT_RANGE_K]  # the report's own values
        assert row["settings"]["epochs"] == 1 and row["settings"]["dataset"] == "iris"
        assert 0.0 <= row["device_accuracy"] <= 1.0
        assert row["lambda_max"] >= row["hessian_trace"] / 1e6  # both measured, finite
        assert store.get_model(row["model"]).metadata["method"] == row["method"]
    pat_sat = table["rows"][1]
    assert pat_sat["device_forwards"] > 0 and pat_sat["bench_time_s"] > 0  # trained with the chip in the loop
    assert table["chance"] == 1 / 3
    report = json.loads((result.report.parent / "report.json").read_text())
    assert [m["sweeps"]["drift"]["values"] for m in report["models"]] == [list(DRIFT_RANGE_K)] * 2
    html = result.report.read_text()
    assert result.report.name == "report.html" and "data:image/png;base64," in html


def test_demo_command_prints_json() -> None:
    result = CliRunner().invoke(app, ["demo", "--dataset", "iris", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert [row["method"] for row in table["rows"]] == ["bp", "pat+sat"]
    assert Path(table["report"]).is_file()


def test_demo_table_shows_every_drift_of_the_report() -> None:
    rows = [
        {
            "method": method,
            "model": model,
            "device_accuracy": 0.9,
            "accuracy_vs_drift": {f"{k:g}": 0.5 for k in DRIFT_RANGE_K},
            "lambda_max": 2.0,
            "hessian_trace": 5.0,
            "bench_time_s": 1.0,
        }
        for method, model in (("bp", "a1"), ("pat+sat", "b2"))
    ]
    rendered = comparison_table({"rows": rows, "chance": 0.1})
    labels = [str(cell) for cell in rendered.columns[0].cells]
    assert [label for label in labels if label.startswith("ΔT")] == [f"ΔT = {k:g} K (%)" for k in DRIFT_RANGE_K]
    assert [column.header for column in rendered.columns[1:]] == ["bp (a1)", "pat+sat (b2)"]
    assert "chance 10.0 %" in str(rendered.title)
