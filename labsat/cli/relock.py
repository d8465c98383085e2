"""``labsat relock``: re-lock a stored model to the chip's drift from a short pilot measurement."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from labsat.cli.app import BenchOption, DataDirOption, JsonOption, app, bench_session, console, emit, user_errors
from labsat.paths import data_dir
from labsat.store import Store
from labsat.training.relock import SOLVE_STEPS
from labsat.training.relock_session import MAX_PILOT, MAX_SOLVE_STEPS, relock_on_bench


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _summary_table(summary: dict) -> Table:
    table = Table(title=f"re-locked model {summary['source_model']} (bench {summary['bench']})")
    table.add_column("")
    table.add_column("value", justify="right")
    pilot = summary["pilot_queries"]
    measure = summary["measure_queries"]
    rows = [
        ("re-locked model id", summary["model"]),
        ("calibration", summary["calibration"]),
        ("fitted drift ΔT", f"{summary['delta_t_k']:+.3f} K"),
        ("pilot device forwards", str(pilot["forwards"])),
        ("pilot samples", str(pilot["samples"])),
        ("pilot bench time", f"{pilot['bench_time_s']:.3f} s"),
        ("pilot misfit", f"{summary['pilot_misfit']:.3g}"),
        ("transfer misfit", f"{summary['transfer_misfit']:.3g}"),
        ("control elements moved by the guard", str(summary["guard_moved"])),
        ("test accuracy before (device)", _percent(summary["test_accuracy_device_before"])),
        ("test accuracy after (device)", _percent(summary["test_accuracy_device_after"])),
        ("measurement device forwards", "-" if measure is None else str(measure["forwards"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


@app.command()
@user_errors
def relock(
    model: Annotated[str, typer.Argument(help="Stored model id (a unique prefix will do).")],
    pilot: Annotated[
        int, typer.Option(min=1, max=MAX_PILOT, help="Unlabelled training images in the pilot pass (device queries).")
    ] = 32,
    solve_steps: Annotated[
        int,
        typer.Option(min=1, max=MAX_SOLVE_STEPS, help="Adam steps re-solving each layer's controls on the twin."),
    ] = SOLVE_STEPS,
    measure: Annotated[
        bool, typer.Option("--measure", help="Also measure the device test accuracy before and after (more queries).")
    ] = False,
    bench: BenchOption = None,
    data: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the chip's drift from one pilot pass and re-solve the model's controls for it; store the new model.

    One device forward of the first layer (the pilot), the drift fitted on the twin, every layer's controls
    re-solved there within what the guard accepts. The REST job ``relock`` does the same."""
    store = Store(data_dir(data))
    with bench_session(bench, data) as opened:
        run = relock_on_bench(opened, store, model, pilot=pilot, solve_steps=solve_steps, measure=measure)
    summary = run.summary()
    emit(summary, [_summary_table(summary)], as_json)
    if not as_json:
        console.print(f"model saved: [bold]{run.model_id}[/]")
