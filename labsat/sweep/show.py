"""``labsat sweep show``: the table, and line plots of every measure (mean ± spread over seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from labsat.plots import save


def table(data: xr.Dataset) -> str:
    """The dataset as a text table, one row per cell (and drift value)."""
    return data.to_dataframe().reset_index().to_string(index=False, float_format=lambda v: f"{v:.4g}")


def line_plots(data: xr.Dataset, folder: Path) -> list[Path]:
    """One PNG per measure: against its first numeric axis (or drift), one line per remaining combination.

    ``seed`` is never a plot axis: lines are its mean, the band ± its sample standard deviation.
    """
    paths = []
    for name, variable in data.data_vars.items():
        reduced = [d for d in variable.dims if d != "seed"]
        numeric = [d for d in reduced if np.issubdtype(data[d].dtype, np.number)]
        if not numeric:
            continue
        x_dim = "drift_k" if "drift_k" in numeric else numeric[0]
        mean = variable.mean("seed") if "seed" in variable.dims else variable
        spread = variable.std("seed", ddof=1) if "seed" in variable.dims and data.sizes["seed"] > 1 else mean * 0
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
        unit = data[x_dim].attrs.get("units")
        axes.set_xlabel(f"{x_dim} ({unit})" if unit else str(x_dim))
        axes.set_ylabel(f"{name} ({variable.attrs.get('units', '')})")
        seeds = data.sizes.get("seed", 1)
        axes.set_title(f"{data.attrs.get('sweep', '')}: {name}, mean ± std over {seeds} seeds")
        axes.legend(fontsize="small")
        paths.append(save(figure, folder / f"{name}.png"))
    return paths
