"""``labsat calibrate`` and ``labsat calibrations``: summary, JSON, plots, listing, comparison, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import BenchWriter
from typer.testing import CliRunner

from labsat.cli import app

runner = CliRunner()


def _small(data: dict[str, Any]) -> None:
    """A 4×4 bank: the same physics, a quarter of the rings, so a full calibration takes seconds."""
    data["devices"]["heaters"]["channels"]["count"] = 16
    data["devices"]["modulators"]["channels"]["count"] = 4
    data["devices"]["detectors"]["channels"]["count"] = 4
    data["system"]["rows"] = data["system"]["cols"] = 4


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def small_bench(write_bench: BenchWriter) -> Path:
    return write_bench(_small)


def test_calibrate_reports_costs_fits_and_plots_then_lists_and_compares(small_bench: Path) -> None:
    summary = _json(["calibrate", "--bench", str(small_bench), "--sweep-points", "32"])
    procedures = {row["procedure"]: row for row in summary["procedures"]}
    assert list(procedures) == ["detectors", "modulators", "rings", "crosstalk", "heaters", "validation"]
    assert procedures["rings"]["programs"] == 3 * 32  # columns {0, 3}, {1}, {2}: three heater maps per point
    assert procedures["rings"]["samples"] == 4 * 32 and procedures["rings"]["bench_time_s"] > 0
    assert all(row["quality"] != "-" for row in procedures.values())
    assert summary["complete"]
    # One stepped heater cannot reach every kernel offset of a 4×4 bank; the heaters fit takes those over.
    assert {flag["procedure"] for flag in summary["flags"]} == {"crosstalk"}
    assert summary["twin_weight_rms"] < 0.02
    assert sorted(Path(path).name for path in summary["plots"]) == ["crosstalk.png", "parity.png", "rings.png"]
    assert all(Path(path).stat().st_size > 1000 for path in summary["plots"])

    again = _json(["calibrate", "--bench", str(small_bench), "--only", "validation"])
    assert {row["procedure"]: row["inherited_from"] for row in again["procedures"]}["rings"] == summary["id"]

    listed = _json(["calibrations", "--bench", str(small_bench)])["calibrations"]
    assert [row["id"] for row in listed] == [again["id"], summary["id"]]
    shown = _json(["calibrations", summary["id"]])
    assert shown["id"] == summary["id"] and shown["parameters"]["crosstalk_kernel"]
    compared = _json(["calibrations", summary["id"], again["id"]])
    assert all(item["max_abs"] in (0, None) for item in compared["parameters"])

    table = runner.invoke(app, ["calibrations"])
    assert table.exit_code == 0 and summary["id"] in table.stdout


def test_calibrate_errors_are_one_line_and_exit_2(small_bench: Path) -> None:
    unknown = runner.invoke(app, ["calibrate", "--bench", str(small_bench), "--only", "ringz"])
    assert unknown.exit_code == 2 and "unknown calibration procedure 'ringz'" in unknown.output
    nothing = runner.invoke(app, ["calibrate", "--bench", str(small_bench), "--resume"])
    assert nothing.exit_code == 2 and "no unfinished calibration to resume" in nothing.output
    missing = runner.invoke(app, ["calibrations", "feedc0ffee00"])
    assert missing.exit_code == 2 and "no calibration 'feedc0ffee00'" in missing.output
