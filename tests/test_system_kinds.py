"""System kinds are plugins: a kind from outside labsat is one package and one entry point.

The toy kind (``tests/plugins/labsat_toy``) is installed here the way pip installs a package's entry
points, as a ``dist-info`` on ``sys.path``; ``labsat devices``, ``calibrate`` and ``train`` then drive a
bench of it like any built-in kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import cli_json, cli_refusal
from plugin_helpers import install_plugin

from labsat.bench import open_bench
from labsat.benchfile import load_bench_file
from labsat.calibration import calibrate_bench
from labsat.calibration.absorber import AbsorberCalibrationOptions
from labsat.errors import BenchFileError, LabsatError
from labsat.store import Store
from labsat.systems.kind import GROUP, forget_system_kinds, known_system_types, system_kind
from labsat.training.session import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The toy kind installed: its package importable, its entry point in the ``labsat.systems`` group."""
    install_plugin(tmp_path / "site", monkeypatch, "labsat-toy", GROUP, "toy_mesh = labsat_toy:KIND")
    forget_system_kinds()
    yield
    forget_system_kinds()


@pytest.fixture
def toy_bench(tmp_path: Path) -> Path:
    """config/sim-mzi.yaml cut down to 4 modes, as a toy mesh with a key of its own."""
    data = yaml.safe_load((ROOT / "config" / "sim-mzi.yaml").read_text())
    data["name"] = "sim-toy"
    data["devices"]["heaters"]["channels"]["count"] = 12
    data["devices"]["modulators"]["channels"]["count"] = 4
    data["devices"]["detectors"]["channels"]["count"] = 4
    data["system"].update(type="toy_mesh", modes=4, dark_repeats=3)
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_built_in_kinds_are_entry_points() -> None:
    assert {"mrr_bank", "mzi_mesh", "d2nn"} <= set(known_system_types())
    for name in ("mrr_bank", "mzi_mesh", "d2nn"):
        kind = system_kind(name)
        assert kind.type == name and kind.spec.model_fields["type"].annotation.__args__ == (name,)


def test_a_bench_of_an_unknown_kind_is_refused_naming_the_known_ones(toy_bench: Path) -> None:
    with pytest.raises(BenchFileError) as refused:
        load_bench_file(toy_bench)
    message = str(refused.value)
    assert "system" in message and "unknown system type 'toy_mesh'" in message and "mzi_mesh" in message


def test_an_installed_kind_validates_its_own_keys(toy_kind: None, toy_bench: Path) -> None:
    spec = load_bench_file(toy_bench)
    assert spec.system.type == "toy_mesh" and spec.system.label == "4-mode toy mesh"
    assert spec.model_dump()["system"]["dark_repeats"] == 3  # the kind's own key survives a dump
    data = yaml.safe_load(toy_bench.read_text())
    data["system"]["dark_repeats"] = 0
    toy_bench.write_text(yaml.safe_dump(data))
    with pytest.raises(BenchFileError, match=r"system\.dark_repeats"):
        load_bench_file(toy_bench)


def test_devices_calibrate_and_train_drive_a_bench_of_the_plugin_kind(
    toy_kind: None, toy_bench: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    bench = ["--bench", str(toy_bench), "--data-dir", str(data_dir)]
    devices = cli_json("devices", "--bench", str(toy_bench))
    assert {device["name"] for device in devices["devices"]} == {"heaters", "modulators", "detectors"}

    calibrated = cli_json("calibrate", *bench)
    assert calibrated["kind"] == "toy_mesh" and calibrated["bench"] == "sim-toy"
    assert "outputs" not in calibrated  # the summary shows the figures, not the fitted values
    assert calibrated["mean_output"] > 0 and calibrated["cost"]["programs"] == 1
    shown = cli_json("calibrations", calibrated["id"], "--data-dir", str(data_dir))
    assert len(shown["parameters"]["outputs"]) == 4  # stored as the kind's own record, and read back as one

    refused = cli_refusal("calibrate", *bench, "--mesh-settings", "20")
    assert "--mesh-*: for an MZI mesh's fit only; bench 'sim-toy' is a 4-mode toy mesh" in refused
    assert "calibrated by a toy mesh's zero-power reading" in refused

    args = ("train", *bench, "--dataset", "iris", "--method", "pat", "--epochs", "1")
    trained = cli_json(*args)
    assert trained["calibration"] == calibrated["id"] and trained["calibrated_now"] is False
    assert trained["queries"]["forwards"] == trained["steps"]  # PAT: one device forward per step
    net, metadata = load_model(Store(data_dir), trained["model"])
    assert metadata["system"] == "toy_mesh" and net.sizes == (4, 3)


CORE = (
    "bench.py",
    "benchfile.py",
    "store.py",
    "cli",
    "jobs",
    "api",
    "calibration/dispatch.py",
    "calibration/stored.py",
    "training/session.py",
    "evaluation/session.py",
    "simulators/plugin.py",
)


def test_the_core_has_no_switch_on_system_kinds() -> None:
    """No core module names a kind's System class or compares ``system.type`` with a kind's name."""
    switch = re.compile(r"isinstance\([^)]*\b(MRRBankSystem|MZIMeshSystem|D2NNSystem)\b|system\.type\s*[!=]=|_chip\"\]")
    package = ROOT / "labsat"
    files = [
        path
        for part in CORE
        for path in ((package / part).rglob("*.py") if (package / part).is_dir() else [package / part])
    ]
    assert len(files) > 20
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in files
        for line in path.read_text().splitlines()
        if switch.search(line)
    ]
    assert found == []


def test_the_bench_file_schema_knows_no_kind() -> None:
    """``system:`` models come from the installed kinds: the schema module itself defines none."""
    import labsat.benchfile as schema

    defined_here = [
        name
        for name, value in vars(schema).items()
        if isinstance(value, type) and issubclass(value, schema.SystemSpec) and value is not schema.SystemSpec
    ]
    assert defined_here == []
    assert {kind: system_kind(kind).spec.__module__ for kind in ("mrr_bank", "mzi_mesh", "d2nn", "saturable")} == {
        "mrr_bank": "labsat.specs.mrr",
        "mzi_mesh": "labsat.specs.mzi",
        "d2nn": "labsat.specs.d2nn",
        "saturable": "labsat.specs.saturable",
    }


def test_a_calibration_option_no_kind_takes_is_refused_by_name(tmp_path: Path) -> None:
    with open_bench(ROOT / "config" / "sim-mzi.yaml", torch_device=torch.device("cpu")) as bench:
        with pytest.raises(LabsatError, match=r"sweeps: no installed system kind takes this calibration option"):
            calibrate_bench(bench, Store(tmp_path), sweeps=3)
        with pytest.raises(LabsatError, match=r"absorber: for a saturable absorber's curve fit only; bench 'sim-mzi'"):
            calibrate_bench(bench, Store(tmp_path), absorber=AbsorberCalibrationOptions())
        assert Store(tmp_path).list_calibrations() == []
