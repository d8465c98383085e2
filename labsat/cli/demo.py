"""``labsat demo``: the end-to-end demo on the embedded simulated bench (README's main job)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from labsat.cli.app import BenchOption, DataDirOption, JsonOption, app, bench_session, console, emit, user_errors
from labsat.cli.progress import stage_bar
from labsat.demo import DemoPlan, run_demo
from labsat.paths import data_dir
from labsat.store import Store
from labsat.training.loop import StepRecord

_DEFAULTS_NOTE = "Defaults fit about five minutes on two CPU cores."


def comparison_table(table: dict) -> Table:
    """One column per method, one row per measurement: every drift the report sweeps, so the two agree."""
    rows = table["rows"]
    drifts = list(rows[0]["accuracy_vs_drift"]) if rows else []
    chance = table.get("chance")
    title = "test accuracy on the chip (%), under uniform drift ΔT, and sharpness in control space"
    rendered = Table(title=title + (f"; chance {100 * chance:.1f} %" if chance else ""), title_justify="left")
    rendered.add_column("", no_wrap=True)
    for row in rows:
        rendered.add_column(f"{row['method']} ({row['model']})", justify="right")
    rendered.add_row("on the device (%)", *(f"{100 * row['device_accuracy']:.1f}" for row in rows))
    for drift in drifts:
        rendered.add_row(f"ΔT = {drift} K (%)", *(f"{100 * row['accuracy_vs_drift'][drift]:.1f}" for row in rows))
    rendered.add_row("λmax (loss per V²)", *(f"{row['lambda_max']:.3g}" for row in rows))
    rendered.add_row("trace (loss per V²)", *(f"{row['hessian_trace']:.3g}" for row in rows))
    rendered.add_row("bench time (s)", *(f"{row['bench_time_s']:.0f}" for row in rows))
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
    with bench_session(bench, data) as opened, stage_bar(console, disable=as_json) as bar:
        training: list[str] = []

        def on_stage(text: str) -> None:
            if not as_json:
                console.print(f"[bold]▸[/] {text}")
            bar.stage(text)

        def on_step(method: str, step: StepRecord) -> None:
            if training[-1:] != [method]:
                training.append(method)
                bar.stage(f"training {method} (epochs)", total=epochs)
            bar.advance(step.epoch, f"loss {step.loss:.3f}")

        result = run_demo(
            opened, store, DemoPlan(dataset=dataset, epochs=epochs, seed=seed), on_stage=on_stage, on_step=on_step
        )
    table = result.table()
    emit(table, [comparison_table(table)], as_json)
    if not as_json:
        console.print(f"report: [bold]{result.report}[/]")
