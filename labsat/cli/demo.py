"""``labsat demo``: the end-to-end demo on the embedded simulated bench (README's main job)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from labsat.cli.app import BenchOption, DataDirOption, JsonOption, app, bench_session, console, emit, user_errors
from labsat.demo import DemoPlan, run_demo
from labsat.paths import data_dir
from labsat.store import Store
from labsat.training.loop import StepRecord

_DEFAULTS_NOTE = "Defaults fit about five minutes on two CPU cores."


def _comparison(table: dict) -> Table:
    rows = table["rows"]
    drifts = list(rows[0]["accuracy_vs_drift"]) if rows else []
    rendered = Table(
        title="test accuracy on the chip (%), under uniform drift ΔT (K), and sharpness in control space",
        title_justify="left",
    )
    rendered.add_column("method", no_wrap=True)
    rendered.add_column("chip", justify="right")
    for drift in drifts:
        rendered.add_column(f"{drift} K", justify="right", no_wrap=True)
    rendered.add_column("λmax", justify="right")
    rendered.add_column("trace", justify="right")
    rendered.add_column("bench s", justify="right")
    for row in rows:
        rendered.add_row(
            row["method"],
            f"{100 * row['device_accuracy']:.1f}",
            *(f"{100 * row['accuracy_vs_drift'][d]:.1f}" for d in drifts),
            f"{row['lambda_max']:.3g}",
            f"{row['hessian_trace']:.3g}",
            f"{row['bench_time_s']:.0f}",
        )
    return rendered


@app.command()
@user_errors
def demo(
    epochs: Annotated[int, typer.Option(min=1, help=f"Training epochs per method. {_DEFAULTS_NOTE}")] = 10,
    seed: Annotated[int, typer.Option(help="Seeds the data split, initial controls and data order.")] = 0,
    dataset: Annotated[str, typer.Option(help="digits, iris, a .npz file or an IDX directory.")] = "digits",
    bench: BenchOption = None,
    data: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Calibrate the simulated chip, train weight-space BP and PAT+SAT on digits, compare them under drift."""
    store = Store(data_dir(data))
    with bench_session(bench, data) as opened, console.status("", spinner="dots") as status:

        def on_stage(text: str) -> None:
            if not as_json:
                console.print(f"[bold]▸[/] {text}")
                status.update(text)

        def on_step(method: str, step: StepRecord) -> None:
            status.update(f"training {method}: epoch {step.epoch + 1}/{epochs}, loss {step.loss:.3f}")

        result = run_demo(
            opened, store, DemoPlan(dataset=dataset, epochs=epochs, seed=seed), on_stage=on_stage, on_step=on_step
        )
    table = result.table()
    emit(table, [_comparison(table)], as_json)
    if not as_json:
        console.print(f"report: [bold]{result.report}[/]")
