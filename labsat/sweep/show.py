"""``labsat sweep show``: the table, line plots of every measure and heat maps over two axes (mean over seeds).

``seed`` is never a plot axis: it is what the plots average over (lines: mean ± sample standard deviation;
heat maps: the mean, with the seed count in the title). An uncertainty variable (``noise_std``,
``lambda_max_error``) is not plotted on its own: it belongs to its measure.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from labsat.errors import LabsatError
from labsat.plots import heatmap, save
from labsat.sweep.spec import ACCURACY, EXTRAS, VARIABLES

SEED = "seed"
UNCERTAINTIES = frozenset(name for extras in EXTRAS.values() for name in extras.variables)
MAX_HEATMAPS = 12
"""Most heat maps one ``show`` writes (one per value of the dimensions not on the map)."""


def table(data: xr.Dataset) -> str:
    """The dataset as a text table, one row per cell (and list value)."""
    return data.to_dataframe().reset_index().to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _label(data: xr.Dataset, dim: str) -> str:
    unit = data[dim].attrs.get("units")
    return f"{dim} ({unit})" if unit else dim


def _seed_mean(variable: xr.DataArray) -> xr.DataArray:
    return variable.mean(SEED) if SEED in variable.dims else variable


def line_plots(data: xr.Dataset, folder: Path) -> list[Path]:
    """One PNG per measure: against its own list (``drift_k``, ``read_noise``…) or its first numeric axis,
    one line per remaining combination, the band ± the sample standard deviation over seeds.
    """
    paths = []
    for name, variable in data.data_vars.items():
        if name in UNCERTAINTIES:
            continue
        reduced = [d for d in variable.dims if d != SEED]
        numeric = [d for d in reduced if np.issubdtype(data[d].dtype, np.number)]
        if not numeric:
            continue
        own = VARIABLES[str(name)].axis
        x_dim = own if own in numeric else numeric[0]
        mean = _seed_mean(variable)
        spread = variable.std(SEED, ddof=1) if SEED in variable.dims and data.sizes[SEED] > 1 else mean * 0
        others = [d for d in mean.dims if d != x_dim]
        figure = Figure(figsize=(5, 3.5), layout="constrained")
        axes = figure.add_subplot()
        stacked_mean = mean.stack(line=others) if others else mean.expand_dims(line=[""])
        stacked_spread = spread.stack(line=others) if others else spread.expand_dims(line=[""])
        for i in range(stacked_mean.sizes["line"]):
            m = stacked_mean.isel(line=i).transpose(x_dim).values
            s = stacked_spread.isel(line=i).transpose(x_dim).values
            label = ", ".join(
                f"{d}={v}" for d, v in zip(others, np.atleast_1d(stacked_mean.line.values[i]), strict=False)
            )
            x = data[x_dim].values
            axes.plot(x, m, marker="o", label=label or name)
            axes.fill_between(x, m - s, m + s, alpha=0.2)
        axes.set_xlabel(_label(data, str(x_dim)))
        axes.set_ylabel(f"{name} ({variable.attrs.get('units', '')})")
        seeds = data.sizes.get(SEED, 1)
        axes.set_title(f"{data.attrs.get('sweep', '')}: {name}, mean ± std over {seeds} seeds")
        axes.legend(fontsize="small")
        paths.append(save(figure, folder / f"{name}.png"))
    return paths


def default_heatmap(data: xr.Dataset, measure: str | None = None) -> tuple[str, tuple[str, str]]:
    """The measure (default: the spec's first) and its first two dimensions other than ``seed``."""
    name = measure or next(str(n) for n in data.data_vars if n not in UNCERTAINTIES)
    if name not in data.data_vars:
        raise LabsatError(f"no measure {name!r} in this sweep (it has: {', '.join(map(str, data.data_vars))})")
    dims = [str(d) for d in data[name].dims if d != SEED]
    if len(dims) < 2:
        raise LabsatError(f"a heat map of {name} needs two dimensions besides seed; it has {', '.join(dims) or 'none'}")
    return name, (dims[0], dims[1])


def heatmaps(data: xr.Dataset, folder: Path, measure: str, pair: tuple[str, str]) -> list[Path]:
    """Write :func:`heatmap_figures` into ``folder``; returns the PNGs' paths."""
    return [save(figure, folder / name) for name, figure in heatmap_figures(data, measure, pair)]


def heatmap_figures(data: xr.Dataset, measure: str, pair: tuple[str, str]) -> list[tuple[str, Figure]]:
    """Heat maps of ``measure``'s mean over seeds, ``pair[0]`` along x and ``pair[1]`` along y, every cell annotated.

    One map per combination of the measure's other dimensions (at most :data:`MAX_HEATMAPS`); the title
    carries the sweep's data, bench and shared training settings, and the values the map is taken at.
    """
    variable = data[measure]
    dims = [str(d) for d in variable.dims if d != SEED]
    for axis in pair:
        if axis not in dims:
            raise LabsatError(f"{measure} has no axis {axis!r} (its axes: {', '.join(dims)})")
    if pair[0] == pair[1]:
        raise LabsatError(f"a heat map needs two different axes, got {pair[0]!r} twice")
    mean = _seed_mean(variable)
    rest = [d for d in dims if d not in pair]
    combinations = list(itertools.product(*(range(data.sizes[d]) for d in rest)))
    if len(combinations) > MAX_HEATMAPS:
        raise LabsatError(
            f"{measure} over {pair[0]} × {pair[1]} would make {len(combinations)} maps (one per value of "
            f"{', '.join(rest)}); choose axes that leave at most {MAX_HEATMAPS}"
        )
    settings = json.loads(data.attrs.get("settings", "{}"))
    shared = ", ".join(f"{k}={v}" for k, v in sorted(settings.get("base", {}).items()))
    seeds = data.sizes.get(SEED, 1)
    figures = []
    for index in combinations:
        at = {d: data[d].values[i] for d, i in zip(rest, index, strict=True)}
        matrix = mean.isel({d: i for d, i in zip(rest, index, strict=True)}).transpose(pair[1], pair[0])
        where = ", ".join(f"{d}={v}" for d, v in at.items())
        lines = [
            f"{data.attrs.get('sweep', '')}: {measure}, mean over {seeds} seed{'s' if seeds != 1 else ''}",
            *([f"at {where}"] if where else []),
            f"{data.attrs.get('dataset', '')} on {data.attrs.get('bench', '')}" + (f"; {shared}" if shared else ""),
        ]
        # Room for the annotated values and a title wrapped to the axes' width (about 11 characters an inch).
        size = (max(6.0, 0.9 * data.sizes[pair[0]] + 3.0), 0.6 * data.sizes[pair[1]] + 2.4)
        title = "\n".join(textwrap.fill(line, int((size[0] - 2.2) * 11)) for line in lines)
        figure = heatmap(
            matrix.values,
            title=title,
            row_labels=[str(v) for v in data[pair[1]].values],
            col_labels=[str(v) for v in data[pair[0]].values],
            colorbar=f"{measure}\n({variable.attrs.get('units', '')})",
            xlabel=_label(data, pair[0]),
            ylabel=_label(data, pair[1]),
            centred=variable.attrs.get("units") != ACCURACY and bool((matrix < 0).any()),
            figsize=size,
        )
        suffix = "".join(f"-{d}={v}" for d, v in at.items())
        figures.append((f"heatmap-{measure}-{pair[0]}-{pair[1]}{suffix}.png", figure))
    return figures
