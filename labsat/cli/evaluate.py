"""``labsat evaluate``: robustness and sharpness of stored models, side by side, as tables and a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table as RichTable

from labsat.cli.app import (
    BenchOption,
    DataDirOption,
    ExportFormat,
    JsonOption,
    app,
    bench_session,
    console,
    emit,
    user_errors,
)
from labsat.cli.progress import stage_bar
from labsat.errors import LabsatError
from labsat.paths import data_dir
from labsat.store import Store

if TYPE_CHECKING:
    from labsat.evaluation import Table

SWEEP_NAMES = ("drift", "noise", "transfer", "misalignment")


def _rich(table: Table) -> RichTable:
    """A report table as a rich table."""
    rendered = RichTable(title=table.title, title_justify="left")
    for index, column in enumerate(table.columns):
        rendered.add_column(column, justify="left" if index == 0 else "right")
    for row in table.rows:
        rendered.add_row(*row)
    return rendered


@app.command()
@user_errors
def evaluate(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Stored model id; repeat to compare models.")],
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Sweep ({', '.join(SWEEP_NAMES)}); repeatable. Default: the bench's system's own (a bank: drift, "
            "noise, transfer; a D2NN: misalignment)."
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option(min=1, help="Seeds per noise/transfer point (transfer: at least 5 chips; drift needs one).")
    ] = 3,
    landscape_steps: Annotated[int, typer.Option(min=3, help="Loss-landscape grid side (odd).")] = 31,
    out: Annotated[Path | None, typer.Option(help="Report directory. Default: an artifact dir in the store.")] = None,
    bench: BenchOption = None,
    data: DataDirOption = None,
    as_json: JsonOption = False,
    export: Annotated[
        ExportFormat | None,
        typer.Option("--export", help="Also write the sweeps and sharpness as NetCDF (nc) or CSV (csv)."),
    ] = None,
    export_to: Annotated[
        Path | None, typer.Option("--export-to", help="Export file (default: evaluation.nc|csv in the report folder).")
    ] = None,
) -> None:
    """Accuracy under drift, read noise and on fresh chips; λmax and trace; landscape; confusion; report.

    On an MZI mesh bench: the accuracy on the device and on the calibrated twin (the sweeps model a bank).

    On a D2NN bench: the same, and the twin's accuracy with the masks rotated (the misalignment sweep)."""
    # Imported here, not at module level: matplotlib and the torch.func machinery would otherwise slow
    # every `labsat` command down, `labsat --help` included.
    from labsat.evaluation import report_data, report_tables
    from labsat.evaluation.photonic import EvaluationSettings
    from labsat.evaluation.session import evaluate_models

    sweeps = tuple(dict.fromkeys(sweep)) if sweep else None
    unknown = [name for name in sweeps or () if name not in SWEEP_NAMES]
    if unknown:
        raise LabsatError(f"unknown sweep {unknown[0]!r} (known: {', '.join(SWEEP_NAMES)})")
    if landscape_steps % 2 == 0:
        raise LabsatError(f"--landscape-steps must be odd (θ is the grid's centre), got {landscape_steps}")
    settings = EvaluationSettings(sweeps=sweeps, seeds=seeds, landscape_steps=landscape_steps)
    store = Store(data_dir(data))
    with bench_session(bench, data) as opened, stage_bar(console, disable=as_json) as bar:
        bar.stage("evaluating (models)", total=len(dict.fromkeys(model)))

        def on_model(index: int, count: int, model_id: str, meta: dict) -> None:
            bar.advance(index - 1, f"{meta.get('method', '?')} model {model_id}")

        evaluations, report = evaluate_models(opened, store, model, settings, out=out, on_model=on_model)
    if export is not None:
        from labsat.evaluation.export import evaluation_dataset
        from labsat.labelled import write_labelled

        exported = write_labelled(
            evaluation_dataset(evaluations), export_to or report.parent / f"evaluation.{export}", export
        )
    tables = report_tables(evaluations)
    emit({"report": str(report), **report_data(evaluations, grids=False)}, [_rich(t) for t in tables], as_json)
    if not as_json:
        for evaluation in evaluations:
            for note in evaluation.notes:
                console.print(f"[bold yellow]{evaluation.name}:[/] {note}", highlight=False)
        console.print(f"report: [bold]{report}[/]")
        if export is not None:
            console.print(f"export: [bold]{exported}[/]")
