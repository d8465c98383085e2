"""Sweeps: the same 2×2×2 grid on the local pool and on a local Ray gives the same numbers; resume skips."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

from labsat.cli import app
from labsat.labelled import write_csv, write_netcdf
from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.engines import run_sweep
from labsat.sweep.grid import cells
from labsat.sweep.show import line_plots
from labsat.sweep.spec import SpecError, load_spec

TINY = """\
name: tiny
dataset: iris
base: {epochs: 1, hidden: [4], batch_size: 64, deploy_steps: 10}
axes:
  method: [bp, pat]
  lr: [0.01, 0.05]
  seed: [0, 1]
measure: [accuracy, drift, forwards]
drift_k: [0.0, -1.0]
"""


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pool")
    spec_path = folder / "spec.yaml"
    spec_path.write_text(TINY)
    counts = run_sweep(load_spec(spec_path), folder, workers=2, show_progress=False)
    assert counts == {"skipped": 0, "ok": 8, "failed": 0}
    return spec_path, folder


def test_ray_gives_the_pool_s_numbers_for_the_same_seeds(pooled: tuple[Path, Path], tmp_path: Path) -> None:
    spec_path, folder = pooled
    spec = load_spec(spec_path)
    counts = run_sweep(spec, tmp_path, engine="ray", workers=2, show_progress=False)
    assert counts["ok"] == 8
    pool_data, ray_data = sweep_dataset(spec, folder), sweep_dataset(spec, tmp_path)
    assert pool_data.sizes == {"method": 2, "lr": 2, "seed": 2, "drift_k": 2}
    assert not bool(pool_data["accuracy"].isnull().any())
    xr.testing.assert_identical(pool_data, ray_data)


def test_a_resumed_sweep_skips_finished_cells_and_reruns_the_rest(pooled: tuple[Path, Path], tmp_path: Path) -> None:
    spec_path, folder = pooled
    spec = load_spec(spec_path)
    for cell in cells(spec)[:6]:  # a sweep killed after six cells
        (tmp_path / "cells").mkdir(exist_ok=True)
        (tmp_path / "cells" / f"{cell.id}.json").write_bytes((folder / "cells" / f"{cell.id}.json").read_bytes())
    counts = run_sweep(spec, tmp_path, workers=1, show_progress=False)
    assert counts == {"skipped": 6, "ok": 2, "failed": 0}
    xr.testing.assert_identical(sweep_dataset(spec, folder), sweep_dataset(spec, tmp_path))


def test_netcdf_carries_units_and_settings_and_plots_are_written(pooled: tuple[Path, Path], tmp_path: Path) -> None:
    spec_path, folder = pooled
    data = sweep_dataset(load_spec(spec_path), folder)
    with xr.open_dataset(write_netcdf(data, tmp_path / "r.nc"), engine="h5netcdf") as opened:
        assert opened["drift"].attrs["units"] == "fraction of the test split"
        assert opened["drift_k"].attrs["units"] == "K"
        assert '"method": ["bp", "pat"]' in opened.attrs["settings"]
        xr.testing.assert_allclose(opened.load(), data)
    assert len(write_csv(data, tmp_path / "r.csv").read_text().splitlines()) == 1 + 16
    assert {p.name for p in line_plots(data, tmp_path)} == {"accuracy.png", "drift.png", "forwards.png"}


def test_a_bad_spec_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("lr: [0.01, 0.05]", "lr: [0.01, -1]"))
    with pytest.raises(SpecError, match=r"bad\.yaml: axes\.lr\[1\] = -1: Input should be greater than 0"):
        load_spec(path)
    path.write_text(TINY.replace("measure:", "mesure:"))
    with pytest.raises(SpecError, match=r"bad\.yaml: mesure: Extra inputs"):
        load_spec(path)


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(TINY.replace("dataset: iris", "dataset: no-such-data").replace("seed: [0, 1]", "seed: [0]"))
    spec = load_spec(path)
    counts = run_sweep(spec, tmp_path, workers=2, show_progress=False)
    assert counts == {"skipped": 0, "ok": 0, "failed": 4}
    assert sweep_dataset(spec, tmp_path).attrs["failed_cells"] == 4


def test_the_command_skips_stored_cells_writes_results_and_shows_them(pooled: tuple[Path, Path]) -> None:
    spec_path, folder = pooled
    runner = CliRunner()
    ran = runner.invoke(app, ["sweep", "run", str(spec_path), "--out", str(folder)])
    assert ran.exit_code == 0, ran.output
    assert "0 cells ran, 8 skipped" in ran.output
    with xr.open_dataset(folder / "results.nc", engine="h5netcdf") as opened:
        assert opened.attrs["sweep"] == "tiny"
    shown = runner.invoke(app, ["sweep", "show", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "drift.png" in shown.output and (folder / "drift.png").stat().st_size > 0
    bad = runner.invoke(app, ["sweep", "run", str(folder / "missing.yaml")])
    assert bad.exit_code == 2 and "missing.yaml" in bad.output


BENCHMARK_SWEEPS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "sweeps").rglob("*.yaml"))


@pytest.mark.parametrize("path", BENCHMARK_SWEEPS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_benchmark_sweep_spec_is_valid_and_names_its_cells_uniquely(path: Path) -> None:
    grid = cells(load_spec(path))
    assert grid and len({cell.id for cell in grid}) == len(grid)


def test_the_benchmark_sweeps_are_all_found() -> None:
    names = {f"{path.parent.name}/{path.stem}" for path in BENCHMARK_SWEEPS}
    assert {"sweeps/mzi", "sweeps/scaling", "methods/plain", "methods/offsets"} <= names
