"""``labsat calibrate`` and ``labsat calibrations``: run, list, show and compare calibrations.

A bank's calibration (procedures, plots, flags), a mesh's and a D2NN's (one fit each, its figures) are run
by the same command (:func:`~labsat.calibration.calibrate_bench` picks which) and listed in the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labsat.benchfile import load_bench_file
from labsat.calibration import (
    PROCEDURE_ORDER,
    StoredCalibration,
    calibrate_bench,
    compare,
)
from labsat.calibration.reporting import CalibrationReport
from labsat.calibration.stored import summary_fields
from labsat.cli.app import (
    BenchOption,
    DataDirOption,
    ExportFormat,
    JsonOption,
    app,
    bench_session,
    console,
    emit,
    error_console,
    user_errors,
)
from labsat.cli.options import option_name, settings_options
from labsat.errors import LabsatError
from labsat.paths import data_dir as resolve_data_dir
from labsat.store import Store
from labsat.systems.kind import CalibrationSettings, bench_kind, calibration_settings, system_kind

OnlyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--only",
        help=f"Run only this procedure (repeat for several; the rest come from the bench's latest calibration): "
        f"{', '.join(PROCEDURE_ORDER)}.",
    ),
]


def _cli_name(setting: CalibrationSettings) -> str:
    """How a refused options model is named to a CLI user: its flags (``--lut-*``), or the first few of them."""
    if setting.prefix:
        return f"--{setting.prefix}-*"
    flags = [option_name(name) for name in setting.model.model_fields]
    return f"the bank's options ({', '.join(flags[:2])}, ...)"


CLI_NAMES = {
    "only": "--only",
    "resume": "--resume",
    **{setting.parameter: _cli_name(setting) for setting in calibration_settings()},
}
"""How a refused option is named to a CLI user (see :func:`~labsat.calibration.calibrate_bench`)."""


def kinds_settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """Decorate ``command`` with every installed kind's calibration options, each passed as its keyword."""
    for setting in calibration_settings():
        command = settings_options(setting.model, setting.parameter, prefix=setting.prefix, optional=True)(command)
    return command


def _tables(report: CalibrationReport) -> list[Table]:
    """A calibration report's tables, rendered."""
    tables = []
    for text in report.tables:
        table = Table(title=text.title, caption=text.caption)
        for column, justify in text.columns:
            table.add_column(column, justify=justify, overflow="fold" if text.fold else "ellipsis")  # type: ignore[arg-type]
        for row in text.rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def _report(record: StoredCalibration, store: Store, *, figures: bool) -> CalibrationReport:
    """``record`` reported by the calibration part of its kind's system."""
    return system_kind(record.kind).calibration.report(record, store, figures=figures)


@app.command(name="calibrate")
@user_errors
@kinds_settings_options
def calibrate_command(
    bench: BenchOption = None,
    only: OnlyOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the bench's interrupted calibration.")] = False,
    data_dir: DataDirOption = None,
    json: JsonOption = False,
    **settings: Any,
) -> None:
    """Calibrate the bench and fit its twin.

    An MRR bank: its procedures (record, raw data, PNG plots), tuned by the options without a prefix (not with
    --resume, which measures as the interrupted run did). An MZI mesh: one whole-mesh fit (--mesh-*).

    A D2NN: the gray→phase LUT of each mask SLM, fitted by split-screen interference (--lut-*).

    The REST job ``calibrate`` takes the same settings as ``options``, ``mesh`` and ``d2nn``."""
    store = Store(resolve_data_dir(data_dir))
    columns = (TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    again = "`labsat calibrate --resume` continues where the run stopped"
    try:
        with bench_session(bench, data_dir) as opened, Progress(*columns, console=error_console) as progress:
            if "resume" not in bench_kind(opened).calibration.parameters:
                again = "a fit is stored only once finished: run `labsat calibrate` again"
            tasks: dict[str, Any] = {}

            def report(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total)
                progress.update(tasks[name], completed=done, total=total)

            record = calibrate_bench(
                opened,
                store,
                only=only,
                resume=resume,
                progress=report,
                names=CLI_NAMES,
                **settings,
            )
    except (KeyboardInterrupt, SystemExit):
        error_console.print(f"[bold yellow]interrupted:[/] the bench is in its safe state; {again}")
        raise
    calibrated = _report(record, store, figures=True)
    emit(calibrated.summary, _tables(calibrated), json)


def _listing(records: list[StoredCalibration]) -> tuple[list[dict[str, Any]], Table]:
    rows = [{**summary_fields(record), "created": record.created.isoformat()} for record in records]
    table = Table(title="calibrations", caption="twin rms: a bank's per weight, a mesh's holdout (output units)")
    for column in ("id", "bench", "created", "procedures", "state", "flags", "twin rms"):
        table.add_column(column, no_wrap=column in ("id", "created"))
    for row in rows:
        rms = row["twin_weight_rms"] if row["holdout_rms"] is None else row["holdout_rms"]
        table.add_row(
            row["id"],
            row["bench"],
            row["created"][:19],
            ", ".join(row["procedures"]),
            "finished" if row["complete"] else "unfinished",
            str(row["flags"]) if row["flags"] else "",
            "" if rms is None else f"{rms:.3g}",
        )
    return rows, table


@app.command(name="calibrations")
@user_errors
def calibrations_command(
    ids: Annotated[
        list[str] | None, typer.Argument(help="One id: show that calibration. Two ids: compare them (second − first).")
    ] = None,
    bench: BenchOption = None,
    data_dir: DataDirOption = None,
    json: JsonOption = False,
    export: Annotated[
        ExportFormat | None,
        typer.Option("--export", help="With one id: write its fitted quantities as NetCDF (nc) or CSV (csv)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Export file (default: calibration-ID.nc|csv).")] = None,
) -> None:
    """List stored calibrations (all benches, or the one of --bench), show one, or compare two."""
    store = Store(resolve_data_dir(data_dir))
    ids = ids or []
    if len(ids) > 2:
        raise LabsatError("give at most two calibration ids (one to show it, two to compare them)")
    if export is not None:
        if len(ids) != 1:
            raise LabsatError("--export writes one calibration: give its id")
        from labsat.calibration.export import calibration_dataset  # xarray only when exporting
        from labsat.labelled import write_labelled

        record = store.get_calibration(ids[0])
        path = write_labelled(calibration_dataset(record), out or Path(f"calibration-{record.id}.{export}"), export)
        console.print(f"calibration {record.id} → {path}")
        return
    if not ids:
        name = None if bench is None else load_bench_file(bench).name
        rows, table = _listing(store.list_calibrations(name))
        emit({"calibrations": rows}, [table], json)
    elif len(ids) == 1:
        report = _report(store.get_calibration(ids[0]), store, figures=False)
        emit({**report.summary, "parameters": report.parameters}, _tables(report), json)
    else:
        first, second = (store.get_calibration(calibration_id) for calibration_id in ids)
        comparison = compare(first, second)
        table = Table(title=f"calibration {comparison.b} − {comparison.a}")
        for column in ("parameter", "count", "mean", "rms", "max |Δ|", "at"):
            table.add_column(column, justify="left" if column == "parameter" else "right")
        for item in comparison.parameters:
            table.add_row(
                item.name,
                str(item.count),
                *("" if v is None else f"{v:.3g}" for v in (item.mean, item.rms, item.max_abs)),
                "" if item.worst_index is None else str(tuple(item.worst_index)),
            )
        emit(comparison.model_dump(), [table], json)
