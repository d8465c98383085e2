"""``labsat train``: train a photonic network on a bench and store the trained controls as a model."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labsat.cli.app import BenchOption, DataDirOption, JsonOption, app, bench_session, console, emit, user_errors
from labsat.cli.options import settings_options
from labsat.datasets import load_dataset
from labsat.paths import data_dir
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.loop import StepRecord
from labsat.training.session import bench_network, train_on_bench


def _summary_table(summary: dict) -> Table:
    table = Table(title=f"trained {summary['method']} on {summary['dataset']} (bench {summary['bench']})")
    table.add_column("")
    table.add_column("value", justify="right")
    queries = summary["queries"]
    rows = [
        ("model id", summary["model"]),
        ("calibration", summary["calibration"] + (" (run now)" if summary["calibrated_now"] else "")),
        ("ascent", summary["ascent"] or "-"),
        ("epochs / steps", f"{summary['epochs']} / {summary['steps']}"),
        ("final training loss", f"{summary['final_loss']:.4f}" if summary["final_loss"] is not None else "-"),
        ("test accuracy (device)", f"{100 * summary['test_accuracy_device']:.2f} %"),
        ("test accuracy (twin)", f"{100 * summary['test_accuracy_twin']:.2f} %"),
        ("validation accuracy (device)", _percent(summary["validation_accuracy_device"])),
        (
            "validation accuracy by epoch (model)",
            " ".join(f"{100 * a:.1f}" for a in summary["validation_accuracy"]) or "-",
        ),
        *_noise_rows(summary["nat_noise"]),
        ("device forwards", str(queries["forwards"])),
        ("tile programs", str(queries["programs"])),
        ("samples", str(queries["samples"])),
        ("bench time", f"{queries['bench_time_s']:.1f} s"),
        ("wall time", f"{summary['wall_s']:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _noise_rows(noise: dict | None) -> list[tuple[str, str]]:
    """What NAT injected and where each σ came from (fitted on the device or configured)."""
    if noise is None:
        return []
    source = f"fitted, {noise['repeats']} readings" if noise["fitted"] else "configured"
    return [
        ("NAT read-noise σ (per max input)", f"{noise['read_sigma']:.4g} ({source})"),
        ("NAT control-noise σ", f"{noise['control_sigma']:.4g} ({source})"),
        ("NAT drift σ (controls)", f"{noise['drift_sigma']:.4g} (drift scale {noise['drift_scale']:g})"),
        ("NAT injected control σ", f"{noise['injected_control_sigma']:.4g}"),
    ]


@app.command()
@user_errors
@settings_options(TrainConfig, "config")
def train(
    config: TrainConfig,
    dataset: Annotated[
        str, typer.Option(help="digits, iris, a .npz file (x_train, y_train, x_test, y_test) or an IDX directory.")
    ] = "digits",
    calibration: Annotated[
        str | None, typer.Option(help="Calibration id to build the twin from (default: newest; run one if none).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue this run from its last checkpoint.")] = False,
    bench: BenchOption = None,
    data: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a network on the bench (device forward passes, twin backward passes, SAT) and store it.

    On an MZI mesh bench the network is a trained encoder onto the modes and one pass through the mesh.

    On a D2NN bench it is the image through the masks onto ten detectors, then a digital norm, scale and bias.

    Every setting of the run is an option below; the REST job ``train`` takes the same ones."""
    method, epochs, batch_size = config.method, config.epochs, config.batch_size
    loaded = load_dataset(dataset, seed=config.seed).with_validation(config.validation_fraction, config.seed)
    store = Store(data_dir(data))
    steps_per_epoch = -(-len(loaded.train) // batch_size)
    with bench_session(bench, data) as opened:
        bench_network(opened, config, loaded)  # what cannot run on this bench stops here, before any device time
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
            transient=as_json,
        ) as progress:
            calibrating = progress.add_task("calibrating", total=None, status="", visible=False)
            task = progress.add_task(f"{method} on {loaded.name}", total=epochs * steps_per_epoch, status="")

            def on_calibration(procedure: str, done: int, total: int) -> None:
                progress.update(
                    calibrating, visible=True, description=f"calibrating: {procedure}", completed=done, total=total
                )

            def on_step(record: StepRecord) -> None:
                status = f"epoch {record.epoch + 1}/{epochs}  loss {record.loss:.3f}  fwd {record.cost.forwards}"
                progress.update(task, completed=record.epoch * steps_per_epoch + record.step + 1, status=status)

            run = train_on_bench(
                opened,
                store,
                config,
                loaded,
                dataset_label=dataset,
                calibration=calibration,
                resume=resume,
                on_step=on_step,
                on_calibration=on_calibration,
            )
            progress.update(task, completed=epochs * steps_per_epoch)
    summary = run.summary()
    emit(summary, [_summary_table(summary)], as_json)
    if not as_json:
        console.print(f"model saved: [bold]{run.model_id}[/]")
