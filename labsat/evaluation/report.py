"""The evaluation report: tables, JSON, PNG plots and one self-contained HTML page.

A report compares several models side by side (BP next to SAT is the comparison users need to see), so
every table has a column or row per model and every figure draws all of them. The HTML page embeds its
PNGs as base64 data URIs and its style inline: it is one file that can be mailed, attached to a lab
notebook or opened years later, with nothing to fetch.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from labsat.evaluation.confusion import Confusion
from labsat.evaluation.figures import confusion_figure, landscape_figure, sharpness_figure, sweep_figure
from labsat.evaluation.hessian import Sharpness
from labsat.evaluation.landscape import Landscape
from labsat.evaluation.provenance import HEADLINE, LABELS, setting_text
from labsat.evaluation.sweeps import SweepResult, seed_count
from labsat.plots import save

REPORT_HTML = "report.html"
REPORT_JSON = "report.json"


@dataclass
class ModelEvaluation:
    """Everything measured on one trained model; any part may be missing (not measured)."""

    name: str
    method: str = ""
    accuracy: float | None = None  # on the clean, unperturbed test split, of the model the sweeps perturb
    device_accuracy: float | None = None  # measured on the device itself (bench, or simulator with its noise)
    sharpness: Sharpness | None = None
    sweeps: dict[str, SweepResult] = field(default_factory=dict)
    landscape: Landscape | None = None
    confusion: Confusion | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # how it was evaluated: bench, chip, calibration, split
    settings: dict[str, Any] = field(default_factory=dict)  # what it was trained with (:func:`run_settings`)
    classes: int | None = None  # of its dataset: chance accuracy is 1 / classes
    notes: list[str] = field(default_factory=list)  # what a reader must know, e.g. which sweeps were not run and why

    @property
    def chance(self) -> float | None:
        """The accuracy of guessing: 1 / classes (None where the class count is not known)."""
        return None if not self.classes else 1.0 / self.classes

    def as_dict(self, *, grids: bool = True) -> dict[str, Any]:
        """Plain numbers for ``report.json`` and ``--json``; ``grids=False`` leaves out the landscape's grid."""
        return {
            "name": self.name,
            "method": self.method,
            "settings": self.settings,
            "classes": self.classes,
            "chance": self.chance,
            "accuracy": self.accuracy,
            "device_accuracy": self.device_accuracy,
            "sharpness": self.sharpness.as_dict() if self.sharpness else None,
            "sweeps": {name: result.as_dict() for name, result in self.sweeps.items()},
            "landscape": None if self.landscape is None else _landscape_dict(self.landscape, grids),
            "confusion": self.confusion.as_dict() if self.confusion else None,
            "metadata": self.metadata,
            "notes": self.notes,
        }


def _landscape_dict(landscape: Landscape, grid: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "directions": landscape.directions,
        "filter_normalized": landscape.filter_normalized,
        "centre": landscape.centre,
        "min": float(landscape.losses.min()),
        "max": float(landscape.losses.max()),
    }
    if grid:
        summary |= {"axis": landscape.axis.tolist(), "losses": landscape.losses.tolist()}
    return summary


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells; rendered to HTML here and to rich by the CLI."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        caption = f"<caption>{html.escape(self.title)}</caption>"
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _sweep_names(evaluations: Sequence[ModelEvaluation]) -> list[str]:
    """Every sweep any model has, in first-seen order."""
    return list(dict.fromkeys(name for ev in evaluations for name in ev.sweeps))


def summary_table(evaluations: Sequence[ModelEvaluation]) -> Table:
    """One row per model: clean accuracy, sharpness, and the worst mean accuracy of each sweep."""
    sweeps = _sweep_names(evaluations)
    measured = any(ev.device_accuracy is not None for ev in evaluations)
    chance = any(ev.chance is not None for ev in evaluations)
    columns = (
        "model",
        "method",
        *(("chance",) if chance else ()),
        "accuracy",
        *(("on device",) if measured else ()),
        "λmax",
        "λmin",
        "trace",
        *(f"{name} worst" for name in sweeps),
    )
    rows = []
    for ev in evaluations:
        device = (_percent(ev.device_accuracy),) if measured else ()
        guess = (_percent(ev.chance),) if chance else ()
        sharp = ev.sharpness
        lam_max = "–" if sharp is None else f"{sharp.lambda_max:.4g} ± {sharp.lambda_max_error:.2g}"
        lam_min = "–" if sharp is None else f"{sharp.lambda_min:.4g} ± {sharp.lambda_min_error:.2g}"
        trace = "–" if sharp is None else f"{sharp.trace:.4g} ± {sharp.trace_stderr:.2g}"
        worst = [_percent(ev.sweeps[name].worst) if name in ev.sweeps else "–" for name in sweeps]
        accuracies = (*guess, _percent(ev.accuracy), *device)
        rows.append((ev.name, ev.method or "–", *accuracies, lam_max, lam_min, trace, *worst))
    return Table("Summary (accuracy on the full test split; worst = lowest mean over the sweep)", columns, tuple(rows))


def sweep_table(name: str, evaluations: Sequence[ModelEvaluation]) -> Table:
    """Mean ± std accuracy (%) at each swept value, one column per model that ran this sweep."""
    runs = [(ev.name, ev.sweeps[name]) for ev in evaluations if name in ev.sweeps]
    spec = runs[0][1].spec
    values = sorted({v for _, result in runs for v in result.values})
    cells = {(model, v): cell for model, result in runs for v, cell in zip(result.values, _cells(result), strict=True)}
    rows = tuple((f"{v:g}", *(cells.get((model, v), "–") for model, _ in runs)) for v in values)
    counts = {len(result.seeds) for _, result in runs}
    if counts == {1}:
        spread = "1 seed per point"
    elif len(counts) == 1:
        spread = f"mean ± std over {seed_count(counts.pop())} per point"
    else:
        spread = (
            "mean ± std where a model has more than 1 seed ("
            + ", ".join(f"{model}: {seed_count(len(result.seeds))}" for model, result in runs)
            + ")"
        )
    title = f"Accuracy (%) vs {spec.label}, {spread}"
    return Table(title, (spec.axis_label, *(model for model, _ in runs)), rows)


def _cells(result: SweepResult) -> list[str]:
    """``mean ± std`` in percent; the mean alone where one seed leaves no spread to report."""
    if len(result.seeds) < 2:
        return [f"{m * 100:.1f}" for m in result.mean.tolist()]
    return [f"{m * 100:.1f} ± {s * 100:.1f}" for m, s in zip(result.mean.tolist(), result.std.tolist(), strict=True)]


EVALUATION_ROWS = (
    ("evaluated_on", "evaluated on"),
    ("test_samples", "test samples"),
    ("hessian_samples", "sharpness samples"),
    ("probes", "trace probes"),
)
"""What a settings table shows of how each model was evaluated (its :attr:`ModelEvaluation.metadata`)."""


def settings_table(evaluations: Sequence[ModelEvaluation]) -> Table:
    """What each model was trained with (one column per model) and how it was evaluated.

    The headline settings first, then every other training setting that differs from its default in any
    model (``–`` where a model did not record it), then the evaluation's chip and test split.
    """
    others = list(dict.fromkeys(key for ev in evaluations for key in ev.settings.get("other", {})))
    rows = [(LABELS[key], *(setting_text(ev.settings, key) for ev in evaluations)) for key in HEADLINE]
    rows += [(key, *(setting_text(ev.settings, key) for ev in evaluations)) for key in others]
    rows += [
        (label, *(setting_text(ev.metadata, key) for ev in evaluations))
        for key, label in EVALUATION_ROWS
        if any(key in ev.metadata for ev in evaluations)
    ]
    title = "Run settings (as trained; below the headline ones, every setting that differs from its default)"
    return Table(title, ("setting", *(ev.name for ev in evaluations)), tuple(rows))


def report_tables(evaluations: Sequence[ModelEvaluation]) -> list[Table]:
    """The run settings (where any model has them), the summary, then one table per sweep."""
    settings = [settings_table(evaluations)] if any(ev.settings for ev in evaluations) else []
    sweeps = [sweep_table(name, evaluations) for name in _sweep_names(evaluations)]
    return [*settings, summary_table(evaluations), *sweeps]


def report_data(evaluations: Sequence[ModelEvaluation], *, grids: bool = True) -> dict[str, Any]:
    """The whole evaluation as plain data (``report.json``; ``--json`` prints it without landscape grids)."""
    return {"models": [ev.as_dict(grids=grids) for ev in evaluations]}


@dataclass(frozen=True)
class _Section:
    heading: str
    figure: Figure | None
    filename: str
    tables: tuple[Table, ...] = ()


def _sections(evaluations: Sequence[ModelEvaluation]) -> list[_Section]:
    """What the report shows, in order; a section appears only if some model has its data."""
    settings = (settings_table(evaluations),) if any(ev.settings for ev in evaluations) else ()
    sections = [_Section("Summary", None, "", (*settings, summary_table(evaluations)))]
    sharp = [(ev.name, ev.sharpness) for ev in evaluations if ev.sharpness is not None]
    if sharp:
        sections.append(_Section("Sharpness in control space", sharpness_figure(sharp), "sharpness.png"))
    for name in _sweep_names(evaluations):
        runs = [(ev.name, ev.sweeps[name]) for ev in evaluations if name in ev.sweeps]
        classes = [ev.classes for ev in evaluations if name in ev.sweeps and ev.classes]
        figure = sweep_figure(runs, classes=classes)
        heading = f"Robustness: {runs[0][1].spec.label}"
        sections.append(_Section(heading, figure, f"sweep-{name}.png", (sweep_table(name, evaluations),)))
    scapes = [(ev.name, ev.landscape) for ev in evaluations if ev.landscape is not None]
    if scapes:
        sections.append(_Section("Loss landscape", landscape_figure(scapes), "landscape.png"))
    confusions = [(ev.name, ev.confusion) for ev in evaluations if ev.confusion is not None]
    if confusions:
        sections.append(_Section("Confusion matrices", confusion_figure(confusions), "confusion.png"))
    return sections


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _figure_title(figure: Figure) -> str:
    """The figure's title (its suptitle, else its first axes' title) for the image's alt text."""
    suptitle = figure.get_suptitle()
    return suptitle or figure.axes[0].get_title()


def write_report(
    evaluations: Sequence[ModelEvaluation], out_dir: Path, *, title: str = "labsat robustness report"
) -> Path:
    """Write the PNGs, ``report.json`` and ``report.html`` into ``out_dir``; return the HTML path."""
    if not evaluations:
        raise ValueError("a report needs at least one evaluated model")
    names = [ev.name for ev in evaluations]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique in one report, got {names}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_JSON).write_text(json.dumps({"title": title, **report_data(evaluations)}, indent=2))
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Models: {html.escape(', '.join(names))}. Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>",
        *(
            f"<p><strong>{html.escape(ev.name)}:</strong> {html.escape(note)}</p>"
            for ev in evaluations
            for note in ev.notes
        ),
    ]
    for section in _sections(evaluations):
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.figure is not None:
            png = save(section.figure, out_dir / section.filename).read_bytes()
            alt = html.escape(_figure_title(section.figure), quote=True)
            encoded = base64.b64encode(png).decode("ascii")
            parts.append(f'<p><img alt="{alt}" src="data:image/png;base64,{encoded}"></p>')
        parts.extend(table.html() for table in section.tables)
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    path = out_dir / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    return path
