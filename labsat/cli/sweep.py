"""``labsat sweep run SPEC.yaml`` and ``labsat sweep show FOLDER``: grids of runs, resumable, as NetCDF/CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labsat.cli.app import app, console, user_errors
from labsat.cli.help import PlainHelpGroup
from labsat.errors import LabsatError
from labsat.labelled import write_csv, write_netcdf
from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.engines import run_sweep
from labsat.sweep.show import default_heatmap, heatmaps, line_plots, table
from labsat.sweep.spec import load_spec

sweep_app = typer.Typer(
    help="Grids of training runs on the simulated bench (local pool or Ray).",
    no_args_is_help=True,
    cls=PlainHelpGroup,
)
app.add_typer(sweep_app, name="sweep")

SPEC_NAME = "spec.yaml"


@sweep_app.command("run")
@user_errors
def run(
    spec_path: Annotated[Path, typer.Argument(help="Sweep spec (YAML).")],
    out: Annotated[Path | None, typer.Option("--out", help="Results folder (default: sweeps/NAME).")] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (process pool), ray, or inline (one cell at a time here).")
    ] = "local",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel cells.")] = 2,
    address: Annotated[str | None, typer.Option("--address", help="A Ray cluster, ray://HOST:PORT.")] = None,
) -> None:
    """Run every cell not yet stored (a killed sweep continues), then write results.nc and results.csv."""
    spec = load_spec(spec_path)
    folder = out or Path("sweeps") / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_NAME).write_text(spec_path.read_text(encoding="utf-8"), encoding="utf-8")
    counts = run_sweep(spec, folder, engine=engine, workers=workers, address=address)
    data = sweep_dataset(spec, folder)
    write_netcdf(data, folder / "results.nc")
    write_csv(data, folder / "results.csv")
    console.print(
        f"{counts['ok']} cells ran, {counts['skipped']} skipped (stored), {counts['failed']} failed → {folder}"
    )


@sweep_app.command("show")
@user_errors
def show(
    folder: Annotated[Path, typer.Argument(help="A sweep's results folder.")],
    heatmap: Annotated[
        str | None,
        typer.Option("--heatmap", help="AXIS1,AXIS2: the heat map's x and y axes (default: the measure's first two)."),
    ] = None,
    measure: Annotated[
        str | None, typer.Option("--measure", help="The measure the heat map shows (default: the spec's first).")
    ] = None,
) -> None:
    """Print the table; write a line plot per measure (mean ± std over seeds) and heat maps into the folder.

    The heat maps show the measure's mean over seeds over two axes, one map per value of its other axes.
    """
    spec = load_spec(folder / SPEC_NAME)
    data = sweep_dataset(spec, folder)
    console.print(table(data))
    for path in line_plots(data, folder):
        console.print(f"plot: {path}")
    if heatmap is not None:
        axes = [axis.strip() for axis in heatmap.split(",")]
        if len(axes) != 2:
            raise LabsatError(f"--heatmap takes two axes, AXIS1,AXIS2; got {heatmap!r}")
        name, pair = measure or default_heatmap(data)[0], (axes[0], axes[1])
    else:
        try:
            name, pair = default_heatmap(data, measure)
        except LabsatError:
            if measure is not None:  # asked for by name: say why there is none
                raise
            return  # a grid with one axis besides seed has no heat map to draw
    for path in heatmaps(data, folder, name, pair):
        console.print(f"heat map: {path}")
