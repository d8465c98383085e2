"""The report: figures carry the titles they claim, and the HTML page is one self-contained file."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

from labsat.evaluation import (
    Confusion,
    LossFn,
    ModelEvaluation,
    Sharpness,
    SweepResult,
    SweepSpec,
    loss_landscape,
    report_tables,
    write_report,
)
from labsat.evaluation.figures import confusion_figure, landscape_figure, sharpness_figure, sweep_figure
from labsat.evaluation.provenance import run_settings
from labsat.evaluation.report import settings_table
from labsat.evaluation.sweeps import DRIFT, NOISE
from labsat.training.config import TrainConfig


def _sweep(spec: SweepSpec, values: tuple[float, ...], accuracy: list[list[float]]) -> SweepResult:
    seeds = tuple(range(len(accuracy[0])))
    return SweepResult(replace(spec, values=values), seeds, torch.tensor(accuracy, dtype=torch.float64))


def _bowl(curvature: float) -> LossFn:
    return lambda theta: 0.5 * curvature * theta.square().sum() + 0.1 * theta[0] ** 3


def _legend(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def _metadata(method: str, **changed: object) -> dict[str, object]:
    """What training stores with a model (:func:`train_on_bench`): the headline keys and the whole config."""
    config = TrainConfig.model_validate({"method": method, "epochs": 7, "seed": 3, **changed})
    return {
        "dataset": "iris",
        "method": method,
        "epochs": config.epochs,
        "seed": config.seed,
        "bench": "sim-mrr",
        "calibration": "cal123",
        "settings": config.settings(),
    }


def _model(name: str, curvature: float, drop: float) -> ModelEvaluation:
    """A fake evaluated model: sharper models lose more accuracy under drift."""
    theta = torch.zeros(4, dtype=torch.float64)
    changed = {"rho": 0.25, "lr": 0.01} if name == "sat" else {}
    return ModelEvaluation(
        name=name,
        method=name.upper(),
        settings=run_settings(_metadata(name, **changed)),
        classes=3,
        metadata={"evaluated_on": "simulated chip (seed 7)", "test_samples": 30},
        accuracy=0.95,
        sharpness=Sharpness(
            lambda_max=curvature,
            lambda_max_error=0.01,
            lambda_min=-0.5,
            lambda_min_error=0.02,
            trace=4 * curvature,
            trace_stderr=0.1,
            hvps=12,
            converged=True,
        ),
        sweeps={
            "drift": _sweep(
                DRIFT, (-1.0, 0.0, 1.0), [[0.9 - drop, 0.8 - drop], [0.95, 0.95], [0.9 - drop, 0.7 - drop]]
            ),
            "noise": _sweep(NOISE, (0.0, 0.1), [[0.95, 0.95], [0.9 - drop, 0.88 - drop]]),
        },
        landscape=loss_landscape(_bowl(curvature), theta, directions="random", radius=1.0, steps=5),
        confusion=Confusion(torch.tensor([[9, 1, 0], [2, 7, 1], [0, 0, 10]]), "ΔT = −1 K"),
    )


@pytest.fixture(scope="module")
def models() -> list[ModelEvaluation]:
    return [_model("bp", 40.0, 0.5), _model("sat", 1.5, 0.05)]


def test_figures_say_what_they_show(models: list[ModelEvaluation]) -> None:
    drift = sweep_figure([(m.name, m.sweeps["drift"]) for m in models])
    assert drift.axes[0].get_title() == "Accuracy vs uniform temperature change ΔT"
    assert drift.axes[0].get_xlabel() == "uniform temperature change ΔT (K)"
    assert _legend(drift.axes[0]) == ["bp (2 seeds)", "sat (2 seeds)"]
    assert drift.axes[0].get_ylabel() == "test accuracy (%), mean ± std over seeds"
    sharp = sharpness_figure([(m.name, m.sharpness) for m in models if m.sharpness])
    assert [ax.get_title() for ax in sharp.axes] == [
        "Largest Hessian eigenvalue λmax (loss per control unit²)",
        "Hessian trace (Hutchinson)",
    ]
    assert [ax.get_ylabel() for ax in sharp.axes] == ["λmax (loss per control unit²)", "tr H (loss per control unit²)"]
    assert [t.get_text() for t in sharp.axes[0].get_xticklabels()] == ["bp", "sat"]
    scape = landscape_figure([(m.name, m.landscape) for m in models if m.landscape])
    assert scape.get_suptitle() == "Loss landscape along the random directions"
    assert [ax.get_title() for ax in scape.axes[:2]] == ["bp: loss 0 at θ", "sat: loss 0 at θ"]
    assert scape.axes[0].get_xlabel() == "α along random direction 1 (control units)"
    assert scape.axes[0].get_ylabel() == "β along random direction 2 (control units)"
    confused = confusion_figure([(m.name, m.confusion) for m in models if m.confusion])
    assert confused.get_suptitle() == "Confusion matrices"
    assert confused.axes[0].get_title() == "bp: 86.7% at ΔT = −1 K"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.captions: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_caption = tag == "caption"

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.captions.append(data)
            self._in_caption = False


def _decode_png(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix) :])


def test_report_is_self_contained_with_every_table_and_plot(models: list[ModelEvaluation], tmp_path: Path) -> None:
    page = write_report(models, tmp_path / "out", title="BP vs SAT")
    assert page == tmp_path / "out" / "report.html"
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))

    for tag, attrs in parser.tags:  # nothing to fetch: every src/href is inline data
        for key in ("src", "href"):
            assert str(attrs.get(key, "data:")).startswith("data:"), (tag, attrs)
        assert tag not in {"link", "script", "iframe"}

    images = {attrs["alt"]: _decode_png(str(attrs["src"])) for tag, attrs in parser.tags if tag == "img"}
    expected_files = {
        "sharpness.png": "Largest Hessian eigenvalue λmax (loss per control unit²)",
        "sweep-drift.png": "Accuracy vs uniform temperature change ΔT",
        "sweep-noise.png": f"Accuracy vs {NOISE.label}",
        "landscape.png": "Loss landscape along the random directions",
        "confusion.png": "Confusion matrices",
    }
    assert set(images) == set(expected_files.values())
    for filename, title in expected_files.items():
        png = images[title]
        assert png == (tmp_path / "out" / filename).read_bytes()
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert float(pixels[..., :3].std()) > 0.05  # something is drawn, not a blank canvas

    assert parser.captions == [table.title for table in report_tables(models)]
    text = page.read_text(encoding="utf-8")
    for table in report_tables(models):  # both models side by side in every table
        for row in table.rows:
            assert "<td>" + "</td><td>".join(row) + "</td>" in text.replace("&#x27;", "'")
    assert "<th>bp</th><th>sat</th>" in text  # sweep tables: a column per model

    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [m["name"] for m in data["models"]] == ["bp", "sat"]
    assert data["models"][1]["settings"]["rho"] == 0.25 and data["models"][1]["settings"]["epochs"] == 7
    assert data["models"][1]["settings"]["other"] == {"lr": 0.01}
    assert "<td>ρ (SAT radius)</td><td>no SAT</td><td>0.25</td>" in text
    assert data["models"][1]["sweeps"]["drift"]["mean"] == pytest.approx([0.8, 0.95, 0.75])


def test_summary_and_sweep_tables(models: list[ModelEvaluation]) -> None:
    settings, summary, drift, noise = report_tables(models)
    assert settings.title.startswith("Run settings")
    assert summary.columns == (
        "model",
        "method",
        "chance",
        "accuracy",
        "λmax",
        "λmin",
        "trace",
        "drift worst",
        "noise worst",
    )
    assert summary.rows[0][:6] == ("bp", "BP", "33.3 %", "95.0 %", "40 ± 0.01", "-0.5 ± 0.02")
    assert summary.rows[1][7] == "75.0 %"  # sat's worst drift mean: (0.85 + 0.65) / 2
    assert drift.columns == ("uniform temperature change ΔT (K)", "bp", "sat")
    assert drift.rows[0] == ("-1", "35.0 ± 7.1", "80.0 ± 7.1")
    assert noise.rows[-1][0] == "0.1"


def test_one_seed_shows_no_spread_and_device_accuracy_gets_a_column() -> None:
    drift_once = _sweep(DRIFT, (-1.0, 0.0), [[0.5], [0.9]])
    single = ModelEvaluation("one", accuracy=0.9, device_accuracy=0.85, sweeps={"drift": drift_once})
    summary, drift = report_tables([single])  # no run settings recorded: no settings table
    assert summary.columns[:5] == ("model", "method", "accuracy", "on device", "λmax")
    assert summary.rows[0][:5] == ("one", "–", "90.0 %", "85.0 %", "–")
    assert drift.rows == (("-1", "50.0"), ("0", "90.0"))
    assert drift.title.endswith("1 seed per point") and "±" not in drift.title
    assert single.as_dict()["sweeps"]["drift"]["std"] is None  # no spread is claimed in the JSON either

    figure = sweep_figure([("one", drift_once)])
    ax = figure.axes[0]
    assert _legend(ax) == ["one (1 seed)"]
    assert ax.get_ylabel() == "test accuracy (%)"
    assert not ax.collections  # no ± std band around a single run


def test_mixed_seed_counts_are_named_per_model() -> None:
    once = ModelEvaluation("one", sweeps={"noise": _sweep(NOISE, (0.0, 0.1), [[0.9], [0.8]])})
    thrice = ModelEvaluation("three", sweeps={"noise": _sweep(NOISE, (0.0, 0.1), [[0.9, 0.9, 0.9], [0.7, 0.8, 0.9]])})
    (_, noise) = report_tables([once, thrice])
    assert noise.title.endswith("(one: 1 seed, three: 3 seeds)")
    assert noise.rows[1] == ("0.1", "80.0", "80.0 ± 10.0")
    figure = sweep_figure([("one", once.sweeps["noise"]), ("three", thrice.sweeps["noise"])])
    legend = _legend(figure.axes[0])
    assert legend == ["one (1 seed)", "three (3 seeds)"]
    assert len(figure.axes[0].collections) == 1  # the band of the 3-seed curve only


def test_accuracy_figures_draw_the_chance_line(models: list[ModelEvaluation]) -> None:
    figure = sweep_figure([(m.name, m.sweeps["drift"]) for m in models], classes=[3, 3])
    ax = figure.axes[0]
    chance = [line for line in ax.get_lines() if str(line.get_label()).startswith("chance")]
    assert [line.get_label() for line in chance] == ["chance (1/3)"]
    assert np.asarray(chance[0].get_ydata()).tolist() == pytest.approx([100 / 3, 100 / 3])
    assert "chance (1/3)" in _legend(ax)
    assert models[0].as_dict()["chance"] == pytest.approx(1 / 3)


def test_every_axis_names_its_unit(models: list[ModelEvaluation]) -> None:
    assert sweep_figure([("bp", models[0].sweeps["drift"])]).axes[0].get_xlabel().endswith("(K)")
    noise = sweep_figure([("bp", models[0].sweeps["noise"])]).axes[0]
    assert noise.get_xlabel() == "read-noise σ (fraction of the output's RMS)"
    assert models[0].landscape is not None
    filtered = replace(models[0].landscape, filter_normalized=True)
    scape = landscape_figure([("bp", filtered)])
    assert scape.axes[0].get_xlabel() == "α along random direction 1 (filter-normalised direction steps)"
    assert scape.axes[-1].get_ylabel() == "loss (cross-entropy, nats)"  # the colour bar


def test_run_settings_are_the_recorded_ones() -> None:
    sat = run_settings(_metadata("pat+sat", rho=0.25, lr=0.01, hidden=(8, 8)))
    assert {key: sat[key] for key in ("dataset", "method", "epochs", "rho", "seed", "bench", "calibration")} == {
        "dataset": "iris",
        "method": "pat+sat",
        "epochs": 7,
        "rho": 0.25,
        "seed": 3,
        "bench": "sim-mrr",
        "calibration": "cal123",
    }
    assert sat["other"] == {"lr": 0.01, "hidden": [8, 8]}  # only what differs from TrainConfig's defaults
    bp = run_settings(_metadata("bp"))
    assert bp["rho"] is None and bp["sat"] is False and bp["other"] == {}
    assert run_settings({"method": "sat"})["epochs"] is None  # an old record: nothing invented


def test_settings_table_puts_models_side_by_side(models: list[ModelEvaluation]) -> None:
    table = settings_table(models)
    assert table.columns == ("setting", "bp", "sat")
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["dataset"] == ("iris", "iris")
    assert rows["epochs"] == ("7", "7")
    assert rows["ρ (SAT radius)"] == ("no SAT", "0.25")  # bp's recorded ρ is never used
    assert rows["calibration"] == ("cal123", "cal123")
    assert rows["lr"] == ("–", "0.01")  # bp left lr at its default
    assert rows["test samples"] == ("30", "30")


def test_duplicate_or_missing_models_are_refused(models: list[ModelEvaluation], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        write_report([models[0], models[0]], tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        write_report([], tmp_path)
