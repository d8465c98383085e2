"""``labsat sweep show``'s heat maps, on stored cells written here (no training: the plots are what is tested)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labsat.cli import app
from labsat.errors import LabsatError
from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.grid import cells
from labsat.sweep.show import default_heatmap, heatmap_figures
from labsat.sweep.spec import load_spec
from labsat.sweep.store import CellStore

SPEC = """\
name: shown
dataset: iris
base: {epochs: 3}
axes:
  method: [bp, pat]
  lr: [0.01, 0.05, 0.1]
  seed: [0, 1]
measure: [accuracy, drift, lambda_max]
drift_k: [0.0, -1.0]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A finished sweep whose accuracy is 0.1 × (method index + 1) + lr, drift that minus 0.1 per kelvin."""
    (tmp_path / "spec.yaml").write_text(SPEC)
    spec = load_spec(tmp_path / "spec.yaml")
    store = CellStore(tmp_path)
    for cell in cells(spec):
        m, lr, seed = cell.index
        value = 0.1 * (m + 1) + spec.axes["lr"][lr] + 0.01 * seed
        values = {"accuracy": value, "drift": [value, value - 0.1], "lambda_max": 5.0 - m, "lambda_max_error": 0.1}
        store.put(cell.id, {"status": "ok", "params": cell.params, "values": values})
    return tmp_path


def test_a_heat_map_shows_the_seed_mean_with_labelled_axes_and_the_settings(folder: Path) -> None:
    data = sweep_dataset(load_spec(folder / "spec.yaml"), folder)
    assert default_heatmap(data) == ("accuracy", ("method", "lr"))
    [(name, figure)] = heatmap_figures(data, "accuracy", ("method", "lr"))
    assert name == "heatmap-accuracy-method-lr.png"
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("method", "lr")
    assert [t.get_text() for t in axes.get_xticklabels()] == ["bp", "pat"]
    assert "mean over 2 seeds" in axes.get_title() and "epochs=3" in axes.get_title()
    assert "fraction of the test split" in figure.axes[1].get_ylabel()  # the colour bar
    annotated = {t.get_text() for t in axes.texts}
    assert annotated == {f"{0.1 * (m + 1) + lr + 0.005:.3g}" for m in range(2) for lr in (0.01, 0.05, 0.1)}


def test_a_map_per_value_of_the_other_axes_labelled_with_units(folder: Path) -> None:
    data = sweep_dataset(load_spec(folder / "spec.yaml"), folder)
    maps = heatmap_figures(data, "drift", ("method", "drift_k"))
    assert [name for name, _ in maps] == [f"heatmap-drift-method-drift_k-lr={lr}.png" for lr in (0.01, 0.05, 0.1)]
    axes = maps[0][1].axes[0]
    assert axes.get_ylabel() == "drift_k (K)" and "at lr=0.01" in axes.get_title()
    with pytest.raises(LabsatError, match="accuracy has no axis 'drift_k'"):
        heatmap_figures(data, "accuracy", ("method", "drift_k"))


def test_show_writes_the_heat_maps_beside_the_line_plots(folder: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["sweep", "show", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert (folder / "heatmap-accuracy-method-lr.png").stat().st_size > 0
    assert (folder / "accuracy.png").stat().st_size > 0 and not (folder / "lambda_max_error.png").exists()
    asked = runner.invoke(app, ["sweep", "show", str(folder), "--heatmap", "lr,method", "--measure", "lambda_max"])
    assert asked.exit_code == 0, asked.output
    assert (folder / "heatmap-lambda_max-lr-method.png").stat().st_size > 0
    bad = runner.invoke(app, ["sweep", "show", str(folder), "--heatmap", "lr", "--measure", "nope"])
    assert bad.exit_code == 2 and "AXIS1,AXIS2" in bad.output
    assert np.isfinite(sweep_dataset(load_spec(folder / "spec.yaml"), folder)["lambda_max"]).all()
