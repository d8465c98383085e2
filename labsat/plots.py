"""Plot kinds that calibration and evaluation share: small-multiple curves, annotated heatmaps, parity.

Figures are built on :class:`matplotlib.figure.Figure` directly (never ``pyplot``): that renders with
Agg, needs no display and keeps no global figure registry, so a long-running service cannot leak
figures. Every function returns the figure; :func:`save` writes a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

PANEL_INCHES = 1.6
DPI = 120


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG (parent folders created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def curve_grid(
    x: np.ndarray,
    measured: np.ndarray,
    fitted: np.ndarray,
    notes: Sequence[Sequence[str]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Figure:
    """One small panel per grid cell: measured points and the fitted curve (``(rows, cols, N)``, NaN = none).

    ``notes[r][c]`` is written in the panel; a panel with no fit is shaded, so flagged cells stand out.
    """
    rows, cols = measured.shape[:2]
    # A fixed grid, shared axes: constrained layout over dozens of panels costs seconds per figure.
    figure = Figure(figsize=(PANEL_INCHES * cols + 0.8, PANEL_INCHES * rows + 0.8))
    axes = figure.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    figure.subplots_adjust(left=0.07, right=0.99, bottom=0.06, top=0.94, wspace=0.08, hspace=0.08)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.plot(x, measured[r, c], ".", markersize=2, color="tab:blue")
            if np.isfinite(fitted[r, c]).any():
                ax.plot(x, fitted[r, c], "-", linewidth=0.8, color="tab:red")
            else:
                ax.set_facecolor("#f3d6d6")
            ax.text(0.97, 0.95, notes[r][c], transform=ax.transAxes, fontsize=6, va="top", ha="right")
            ax.tick_params(labelsize=5)
    figure.suptitle(title)
    figure.supxlabel(xlabel)
    figure.supylabel(ylabel)
    return figure


def heatmap(
    matrix: np.ndarray,
    *,
    title: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    colorbar: str,
    annotate: bool = True,
    xlabel: str = "",
    ylabel: str = "",
    centred: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A matrix as colours, each cell annotated with its value; NaN cells stay blank.

    ``centred``: a diverging map symmetric around 0 (signed errors); otherwise a sequential map over the
    values' range (accuracies). Each annotation is black or white, whichever reads on its cell's colour.
    ``figsize`` overrides the size grown from the labels' counts (room for a long title or labels).
    """
    size = figsize or (0.6 * len(col_labels) + 2.4, 0.6 * len(row_labels) + 1.4)
    figure = Figure(figsize=size, layout="constrained")
    ax = figure.subplots()
    if centred:
        limit = float(np.nanmax(np.abs(matrix))) or 1.0
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
    else:
        image = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    if annotate:
        for (r, c), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                red, green, blue, _ = image.cmap(image.norm(value))
                ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
                ax.text(c, r, f"{value:.3g}", ha="center", va="center", fontsize=7, color=ink)
    figure.colorbar(image, ax=ax, label=colorbar)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return figure


def parity(predicted: np.ndarray, measured: np.ndarray, *, title: str, label: str) -> Figure:
    """Predicted against measured with the identity line; the RMS difference goes in the title."""
    predicted, measured = predicted.ravel(), measured.ravel()
    rms = float(np.sqrt(np.mean((predicted - measured) ** 2)))
    figure = Figure(figsize=(4.6, 4.4), layout="constrained")
    ax = figure.subplots()
    ax.plot(measured, predicted, ".", markersize=2, alpha=0.5)
    low, high = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    ax.plot([low, high], [low, high], "-", color="black", linewidth=0.8)
    ax.set_xlabel(f"device: {label}")
    ax.set_ylabel(f"model: {label}")
    ax.set_title(f"{title}\nRMS difference {rms:.3g} over {measured.size} values")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    return figure
