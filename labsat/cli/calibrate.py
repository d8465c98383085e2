"""``labsat calibrate`` and ``labsat calibrations``: run, list, show and compare calibrations.

A bank's calibration (procedures, plots, flags), a mesh's and a D2NN's (one fit each, its figures) are run
by the same command (:func:`~labsat.calibration.calibrate_bench` picks which) and listed in the same table.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labsat.benchfile import load_bench_file
from labsat.calibration import (
    PROCEDURE_ORDER,
    CalibrationOptions,
    CalibrationRecord,
    D2NNCalibrationOptions,
    D2NNCalibrationRecord,
    MeshCalibrationOptions,
    MeshCalibrationRecord,
    StoredCalibration,
    calibrate_bench,
    compare,
)
from labsat.calibration.figures import write_figures
from labsat.calibration.fitted import FitRecord
from labsat.calibration.stored import summary_fields
from labsat.cli.app import BenchOption, DataDirOption, JsonOption, app, bench_session, emit, error_console, user_errors
from labsat.cli.options import settings_options
from labsat.errors import LabsatError
from labsat.paths import data_dir as resolve_data_dir
from labsat.store import Store

OnlyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--only",
        help=f"Run only this procedure (repeat for several; the rest come from the bench's latest calibration): "
        f"{', '.join(PROCEDURE_ORDER)}.",
    ),
]
MESH_PREFIX = "mesh"
D2NN_PREFIX = "lut"
CLI_NAMES = {
    "only": "--only",
    "resume": "--resume",
    "options": "the bank's options (--sweep-points, --repeats, ...)",
    "mesh": f"--{MESH_PREFIX}-*",
    "d2nn": f"--{D2NN_PREFIX}-*",
}
"""How a refused option is named to a CLI user (see :func:`~labsat.calibration.calibrate_bench`)."""


def _summary(record: CalibrationRecord, store: Store, plots: list[str]) -> dict[str, Any]:
    procedures = []
    for name in record.procedures:
        result = record.result(name)
        assert result is not None
        procedures.append(
            {
                "procedure": name,
                "inherited_from": None if result.record_id == record.id else result.record_id,
                **result.cost.model_dump(),
                "quality": result.quality(),
                "flags": len(result.flags),
            }
        )
    return {
        "id": record.id,
        "bench": record.bench,
        "bench_identity": record.bench_identity,
        "created": record.created.isoformat(),
        "complete": record.complete,
        "delta_t_k": record.delta_t_k,
        "procedures": procedures,
        "flags": [flag.model_dump() for flag in record.flags],
        "twin_weight_rms": record.validation.weight_rms if record.validation else None,
        "artifacts": str(store.artifact_dir("calibrations", record.id)),
        "plots": plots,
    }


def _fit_summary(record: FitRecord) -> dict[str, Any]:
    """A mesh's or a D2NN's record as the command prints it: where and how it ran, its figures, its cost."""
    summary: dict[str, Any] = {
        "id": record.id,
        "bench": record.bench,
        "kind": record.kind,
        "bench_identity": record.bench_identity,
        "created": record.created.isoformat(),
        "complete": record.complete,
        "options": record.options.model_dump(),
        **record.figures(),
        "cost": record.cost.model_dump(),
    }
    if isinstance(record, MeshCalibrationRecord):
        summary["modes"] = record.modes
    elif isinstance(record, D2NNCalibrationRecord):
        summary["masks"] = [mask.slm for mask in record.masks]
    return summary


def _fit_rows(summary: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str]:
    """The title, rows and caption of a fit record's table."""
    options = summary["options"]
    if summary["kind"] == "mzi_mesh":
        modes = summary["modes"]
        rows = [
            ("mesh", f"{modes} modes, {modes * (modes - 1) // 2} MZIs"),
            ("settings fitted / held out", f"{options['settings']} / {options['holdout']}"),
            ("fit RMS", f"{summary['fit_rms']:.4g}"),
            ("holdout RMS, calibrated twin", f"{summary['holdout_rms']:.4g}"),
            ("holdout RMS, design twin", f"{summary['design_holdout_rms']:.4g}"),
        ]
        return "mesh calibration", rows, "RMS of twin − device in units of one input's full power"
    levels = len({*range(0, 256, options["step"]), 255})
    rows = [("gray levels measured × readings", f"{levels} × {options['repeats']} per mask and split")]
    for index, slm in enumerate(summary["masks"]):
        rows += [
            (f"{slm}: LUT − nominal, RMS", f"{summary['lut_rms_vs_nominal'][index]:.4f} rad"),
            (f"{slm}: phase at gray 255", f"{summary['lut_span_rad'][index]:.3f} rad"),
            (f"{slm}: fit residual", f"{summary['fit_residual'][index]:.4f}"),
        ]
    caption = "LUT − nominal: common offset removed; residual: RMS misfit over the readings' spread"
    return "D2NN SLM LUT calibration", rows, caption


def _fit_tables(summary: dict[str, Any]) -> list[Table]:
    title, rows, caption = _fit_rows(summary)
    table = Table(title=f"{title} {summary['id']} of bench {summary['bench']}", caption=caption)
    table.add_column("")
    table.add_column("value", justify="right")
    cost = summary["cost"]
    rows += [
        ("programs", str(cost["programs"])),
        ("samples", str(cost["samples"])),
        ("bench time", f"{cost['bench_time_s']:.2f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return [table]


def _summary_tables(summary: dict[str, Any]) -> list[Table]:
    table = Table(title=f"calibration {summary['id']} of bench {summary['bench']}")
    for column, justify in (
        ("procedure", "left"),
        ("programs", "right"),
        ("samples", "right"),
        ("bench time", "right"),
        ("fit quality", "left"),
        ("flags", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in summary["procedures"]:
        inherited = f" (from {row['inherited_from']})" if row["inherited_from"] else ""
        table.add_row(
            row["procedure"] + inherited,
            str(row["programs"]),
            str(row["samples"]),
            f"{row['bench_time_s']:.2f} s",
            row["quality"],
            str(row["flags"]) if row["flags"] else "",
        )
    if summary["twin_weight_rms"] is not None:
        table.caption = (
            f"twin vs device: {summary['twin_weight_rms']:.3g} RMS per weight; files in {summary['artifacts']}"
        )
    tables = [table]
    if summary["flags"]:
        flags = Table(title="flags", show_lines=False)
        for column in ("procedure", "what", "message"):
            flags.add_column(column, overflow="fold")
        for flag in summary["flags"]:
            flags.add_row(flag["procedure"], flag["target"], flag["message"])
        tables.append(flags)
    return tables


@app.command(name="calibrate")
@user_errors
@settings_options(CalibrationOptions, "options", optional=True)
@settings_options(MeshCalibrationOptions, "mesh", prefix=MESH_PREFIX, optional=True)
@settings_options(D2NNCalibrationOptions, "d2nn", prefix=D2NN_PREFIX, optional=True)
def calibrate_command(
    options: CalibrationOptions | None,
    mesh: MeshCalibrationOptions | None,
    d2nn: D2NNCalibrationOptions | None,
    bench: BenchOption = None,
    only: OnlyOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the bench's interrupted calibration.")] = False,
    data_dir: DataDirOption = None,
    json: JsonOption = False,
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
            if opened.spec.system.type != "mrr_bank":
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
                options=options,
                mesh=mesh,
                d2nn=d2nn,
                progress=report,
                names=CLI_NAMES,
            )
    except (KeyboardInterrupt, SystemExit):
        error_console.print(f"[bold yellow]interrupted:[/] the bench is in its safe state; {again}")
        raise
    if isinstance(record, FitRecord):
        summary = _fit_summary(record)
        emit(summary, _fit_tables(summary), json)
        return
    plots = [str(path) for path in write_figures(record, store)]
    summary = _summary(record, store, plots)
    emit(summary, _summary_tables(summary), json)


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
) -> None:
    """List stored calibrations (all benches, or the one of --bench), show one, or compare two."""
    store = Store(resolve_data_dir(data_dir))
    ids = ids or []
    if len(ids) > 2:
        raise LabsatError("give at most two calibration ids (one to show it, two to compare them)")
    if not ids:
        name = None if bench is None else load_bench_file(bench).name
        rows, table = _listing(store.list_calibrations(name))
        emit({"calibrations": rows}, [table], json)
    elif len(ids) == 1:
        record = store.get_calibration(ids[0])
        if isinstance(record, FitRecord):
            summary = _fit_summary(record)
            if isinstance(record, MeshCalibrationRecord):
                parameters = record.parameters.model_dump()
            else:
                parameters = {"luts": {mask.slm: mask.phase for mask in record.masks}}
            emit({**summary, "parameters": parameters}, _fit_tables(summary), json)
            return
        summary = _summary(record, store, [])
        fitted = record.parameters.model_dump() if record.parameters else None
        emit({**summary, "parameters": fitted}, _summary_tables(summary), json)
    else:
        first, second = (store.get_calibration(calibration_id) for calibration_id in ids)
        for record in (first, second):
            if isinstance(record, FitRecord):
                raise LabsatError(
                    f"calibration {record.id} is a {record.LABEL} fit; comparing is for MRR bank records "
                    f"(show it with `labsat calibrations {record.id}`)"
                )
        comparison = compare(first, second)  # type: ignore[arg-type]
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
