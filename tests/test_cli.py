"""The manual bench commands: devices, set, safe (tables and --json)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from labsat import __version__
from labsat.cli import app

runner = CliRunner()


def _devices() -> dict:
    result = runner.invoke(app, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_devices_lists_channels_limits_and_identity() -> None:
    described = _devices()
    assert described["bench"] == "sim-mrr"
    by_name = {device["name"]: device for device in described["devices"]}
    assert set(by_name) == {"heaters", "modulators", "detectors"}
    heaters = by_name["heaters"]
    assert len(heaters["channels"]) == 64
    assert heaters["channels"][0] | {"present_v": 0.0} == {
        "name": "h0",
        "min_v": 0.0,
        "max_v": 4.0,
        "power_max_mw": 16.0,
        "max_step_v": 0.5,
        "safe_v": 0.0,
        "present_v": 0.0,
        "present_mw": 0.0,
    }
    assert heaters["identity"]
    assert len(by_name["detectors"]["channels"]) == 8


def test_set_is_kept_by_the_instrument_and_safe_resets_it() -> None:
    result = runner.invoke(app, ["set", "heaters.h3=1.5", "modulators.m0=0.7", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"set": {"heaters.h3": 1.5, "modulators.m0": 0.7}}
    heaters = next(d for d in _devices()["devices"] if d["name"] == "heaters")
    assert heaters["channels"][3]["present_v"] == pytest.approx(1.5, abs=1e-4)  # read back through the DAC
    assert heaters["channels"][3]["present_mw"] == pytest.approx(2.25, abs=1e-3)

    result = runner.invoke(app, ["safe"])
    assert result.exit_code == 0, result.output
    heaters = next(d for d in _devices()["devices"] if d["name"] == "heaters")
    assert all(channel["present_v"] == 0.0 for channel in heaters["channels"])


def test_set_out_of_range_is_refused_and_writes_nothing() -> None:
    runner.invoke(app, ["set", "heaters.h3=1.0"])
    result = runner.invoke(app, ["set", "heaters.h2=0.5", "heaters.h3=7"])
    assert result.exit_code == 2
    assert "heaters.h3 = 7 refused: above the maximum 4 V; nothing was written" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    heaters = next(d for d in _devices()["devices"] if d["name"] == "heaters")
    assert heaters["channels"][2]["present_v"] == 0.0
    assert heaters["channels"][3]["present_v"] == pytest.approx(1.0, abs=1e-4)


def test_set_rejects_malformed_assignments() -> None:
    for text, fragment in [("heaters.h3", "is not DEVICE.CHANNEL=VALUE"), ("heaters.h3=warm", "is not a number")]:
        result = runner.invoke(app, ["set", text])
        assert result.exit_code == 2
        assert fragment in result.stderr


def test_tables_print_without_json() -> None:
    result = runner.invoke(app, ["devices"])
    assert result.exit_code == 0
    assert "heaters channels" in result.stdout
    assert "sim-mrr" in result.stdout
    assert "h63" in result.stdout


def test_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"labsat {__version__}"
