"""Bad bench files: one clear error naming the file and the key, exit code 2, no traceback."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BenchWriter
from typer.testing import CliRunner

from labsat.benchfile import load_bench_file
from labsat.cli import app
from labsat.errors import BenchFileError

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return edit


CASES: list[tuple[str, Edit, str, str]] = [
    (
        "unknown driver",
        _set("devices.heaters.driver", "qontrol9000"),
        "devices.heaters.driver",
        "unknown driver 'qontrol9000'",
    ),
    ("missing key", _delete("devices.heaters.kind"), "devices.heaters.kind", "required key is missing"),
    ("wrong type", _set("devices.heaters.limits.max_step", "fast"), "devices.heaters.limits.max_step", "valid number"),
    (
        "inverted limits",
        _set("devices.heaters.limits.voltage", [4.0, 0.0]),
        "devices.heaters.limits",
        "voltage range is inverted: min 4 > max 0",
    ),
    (
        "two devices on one channel",
        _set("devices.modulators.address", "sim://mrr/heaters"),
        "devices.modulators.channels",
        "instrument channel 0 at sim://mrr/heaters is already used by device 'heaters'",
    ),
    (
        "unknown channel name",
        _set("devices.heaters.channel_limits", {"h64": {"voltage": [0, 1]}}),
        "devices.heaters.channel_limits.h64",
        "unknown channel name",
    ),
    ("misspelt key", _set("devices.heaters.limits.volage", [0, 1]), "devices.heaters.limits.volage", "unknown key"),
    (
        "system names a missing device",
        _set("system.detectors", "camera"),
        "system.detectors",
        "no device named 'camera'",
    ),
    ("bad simulator parameter", _set("simulator.fwhm_nm", "wide"), "simulator.fwhm_nm", "valid number"),
    (
        "endless ramp delay",
        _set("devices.heaters.limits.step_delay", math.inf),
        "devices.heaters.limits.step_delay",
        "finite number",
    ),
    (
        "vanishing ramp step",
        _set("devices.heaters.limits.max_step", 1e-300),
        "devices.heaters.limits.max_step",
        "greater than or equal to 0.000001",
    ),
    (
        "voltage beyond any source",
        _set("devices.heaters.limits.voltage", [0.0, 1e308]),
        "devices.heaters.limits",
        "must lie within ±1000 V",
    ),
    (
        "infinite resistance (it would switch the current, power and budget rules off)",
        _set("devices.heaters.limits.resistance_ohm", math.inf),
        "devices.heaters.limits.resistance_ohm",
        "finite number",
    ),
    ("NaN budget", _set("limits.heater_power_budget_mw", math.nan), "limits.heater_power_budget_mw", "finite number"),
]


@pytest.mark.parametrize(("case", "edit", "key", "message"), CASES, ids=[case[0] for case in CASES])
def test_bad_bench_file_names_file_and_key(
    case: str, edit: Edit, key: str, message: str, write_bench: BenchWriter
) -> None:
    path = write_bench(edit)
    result = CliRunner().invoke(app, ["devices", "--bench", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: {key}: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndevices: [unclosed\n")
    with pytest.raises(BenchFileError, match=r"broken\.yaml: line \d+: not valid YAML"):
        load_bench_file(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BenchFileError, match=r"nothere\.yaml: cannot read the file"):
        load_bench_file(tmp_path / "nothere.yaml")


def test_real_process_prints_no_traceback(write_bench: BenchWriter) -> None:
    path = write_bench(_set("devices.heaters.limits.voltage", [4.0, 0.0]))
    done = subprocess.run(
        [sys.executable, "-m", "labsat", "devices", "--bench", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "voltage range is inverted" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path, default_bench_data: dict[str, Any]) -> None:
    """A second ``heaters:`` block would silently replace the first one's limits in plain YAML."""
    text = yaml.safe_dump(default_bench_data, sort_keys=False)
    second = "  heaters:\n    driver: sim\n    kind: voltage_source\n    limits: {voltage: [0, 40]}\n"
    path = tmp_path / "twice.yaml"
    path.write_text(text.replace("\n  modulators:\n", "\n" + second + "  modulators:\n", 1))
    with pytest.raises(BenchFileError, match=r"twice\.yaml: line \d+: not valid YAML: duplicate key 'heaters'"):
        load_bench_file(path)
    result = CliRunner().invoke(app, ["set", "--bench", str(path), "heaters.h0=30"])
    assert result.exit_code == 2 and "duplicate key 'heaters'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(BenchFileError, match=r"latin1\.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_bench_file(path)
