"""Matplotlib figures of an evaluation, one per kind, every model on the same figure.

Side by side is the point: a user must see SAT's curve stay up where BP's falls, on one set of axes.
Like :mod:`labsat.plots` (whose :func:`~labsat.plots.save` writes them), figures are built on
:class:`matplotlib.figure.Figure` directly, never ``pyplot``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from labsat.evaluation.confusion import Confusion
from labsat.evaluation.hessian import Sharpness
from labsat.evaluation.landscape import Landscape
from labsat.evaluation.sweeps import SweepResult, seed_count

PANEL_INCHES = 4.2
ANNOTATE_MAX_CLASSES = 12
"""Confusion matrices up to this many classes get their counts written in the cells."""


def _panels(count: int, *, height: float = PANEL_INCHES) -> tuple[Figure, list]:
    figure = Figure(figsize=(PANEL_INCHES * count + 0.6, height), layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    return figure, list(axes)


def sweep_figure(results: Sequence[tuple[str, SweepResult]], *, classes: Sequence[int] = ()) -> Figure:
    """Accuracy against the swept value, one line per model, and the chance line of each class count.

    A model with several seeds is drawn as its mean with a ± std band; one with a single seed as that
    seed's curve alone, since one run shows no spread. ``classes``: the models' class counts (chance is
    1/classes; the line is what a curve that has collapsed falls to).
    """
    spec = results[0][1].spec
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.subplots()
    for name, result in results:
        values = np.asarray(result.values)
        mean = result.mean.numpy() * 100
        (line,) = ax.plot(values, mean, marker="o", markersize=3, label=f"{name} ({seed_count(len(result.seeds))})")
        if len(result.seeds) > 1:
            std = result.std.numpy() * 100
            ax.fill_between(values, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    for count in sorted(set(classes)):
        ax.axhline(100 / count, color="0.4", linestyle="--", linewidth=1, label=f"chance (1/{count})")
    spread = any(len(result.seeds) > 1 for _, result in results)
    ax.set_title(f"Accuracy vs {spec.label}")
    ax.set_xlabel(spec.axis_label)
    ax.set_ylabel("test accuracy (%), mean ± std over seeds" if spread else "test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    return figure


def sharpness_figure(items: Sequence[tuple[str, Sharpness]]) -> Figure:
    """Algebraic λmax and tr H per model as bars with error bars, on a log scale (symlog if one is not positive)."""
    figure, (ax_top, ax_trace) = _panels(2)
    names = [name for name, _ in items]
    positions = np.arange(len(items))
    bars = (
        (
            ax_top,
            [s.lambda_max for _, s in items],
            [s.lambda_max_error for _, s in items],
            "Largest Hessian eigenvalue λmax (loss per control unit²)",
            "λmax (loss per control unit²)",
        ),
        (
            ax_trace,
            [s.trace for _, s in items],
            [s.trace_stderr for _, s in items],
            "Hessian trace (Hutchinson)",
            "tr H (loss per control unit²)",
        ),
    )
    for ax, heights, errors, title, ylabel in bars:
        colours = [f"C{i}" for i in range(len(items))]
        container = ax.bar(positions, heights, yerr=errors, color=colours, capsize=4)
        ax.bar_label(container, labels=[f"{h:.4g}" for h in heights], padding=3)
        top = 3 * max(max(heights), 1.0)  # headroom on a log axis for the labels above the bars
        if min(heights) > 0:
            # Bars on a log axis are only comparable if they all start a clear decade below the shortest.
            ax.set_yscale("log")
            ax.set_ylim(10 ** math.floor(math.log10(min(heights)) - 1), top)
        else:  # a zero or negative value (a dead or unconverged network) has no logarithm
            ax.set_yscale("symlog")
            ax.set_ylim(top=top)
        ax.set_xticks(positions, names, rotation=20, ha="right")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    return figure


def landscape_figure(items: Sequence[tuple[str, Landscape]]) -> Figure:
    """Loss contours around each model's controls, on one shared colour scale so flatness compares."""
    figure, axes = _panels(len(items))
    low = min(float(landscape.losses.min()) for _, landscape in items)
    high = max(float(landscape.losses.max()) for _, landscape in items)
    levels = np.linspace(low, high if high > low else low + 1.0, 21)
    filled: list[ContourSet] = []
    for ax, (name, landscape) in zip(axes, items, strict=True):
        axis = landscape.axis.numpy()
        # losses[i, j] is (alpha_i, beta_j); contourf wants Z[y, x], so beta runs along y after the transpose.
        filled.append(ax.contourf(axis, axis, landscape.losses.numpy().T, levels=levels, cmap="viridis", extend="both"))
        ax.plot([0], [0], marker="+", color="white", markersize=12, markeredgewidth=2)
        first, second = landscape.axis_labels
        ax.set_xlabel(first)
        ax.set_ylabel(second)
        ax.set_title(f"{name}: loss {landscape.centre:.3g} at θ")
        ax.set_aspect("equal")
    # One shared scale: any panel's contours serve.
    figure.colorbar(filled[-1], ax=axes, label="loss (cross-entropy, nats)")
    kind = "top-2 Hessian eigenvectors" if items[0][1].directions == "hessian" else "random directions"
    norm = ", filter-normalised" if items[0][1].filter_normalized else ""
    figure.suptitle(f"Loss landscape along the {kind}{norm}")
    return figure


def confusion_figure(items: Sequence[tuple[str, Confusion]]) -> Figure:
    """Row-normalised confusion matrices (true class down, predicted across), one panel per model."""
    figure, axes = _panels(len(items))
    images: list[AxesImage] = []
    for ax, (name, result) in zip(axes, items, strict=True):
        counts = result.matrix.numpy()
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        images.append(ax.imshow(rates, cmap="Blues", vmin=0, vmax=1))
        classes = counts.shape[0]
        if classes <= ANNOTATE_MAX_CLASSES:
            for (row, col), count in np.ndenumerate(counts):
                colour = "white" if rates[row, col] > 0.5 else "black"
                ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(classes))
        ax.set_yticks(range(classes))
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{name}: {result.accuracy:.1%} at {result.condition}")
    figure.colorbar(images[-1], ax=axes, label="fraction of true class")  # every panel spans 0 to 1
    figure.suptitle("Confusion matrices")
    return figure
