"""Controlling a running service's jobs, benches and models: ``labsat cancel|pause|resume JOB``,
``labsat stop BENCH`` (the emergency stop), ``labsat models`` and ``labsat deploy MODEL``.

Every id may be shortened to a unique prefix (the service resolves it; an ambiguous one is refused with
the candidates listed). Each command prints what the service answered as a table, or as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from labsat.cli.app import JsonOption, app, emit, user_errors
from labsat.cli.client import TokenOption, UrlOption, follow_hint, jobs_table
from labsat.cli.results import value_text
from labsat.client import DEFAULT_URL, LabsatClient
from labsat.jobs.model import Job

JobArgument = Annotated[str, typer.Argument(metavar="JOB", help="Job id, or a unique prefix of it.")]


BenchArgument = Annotated[str, typer.Argument(metavar="BENCH", help="Bench name on the service.")]

_JOB_ACTIONS: tuple[tuple[str, Callable[[LabsatClient, str], Job], str], ...] = (
    (
        "cancel",
        LabsatClient.cancel,
        "Cancel a job: a queued one at once, a running or paused one at its next checkpoint (the bench then goes "
        "to its safe state).",
    ),
    (
        "pause",
        LabsatClient.pause,
        "Pause a running job at its next checkpoint; it waits with the bench safe and keeps the bench.",
    ),
    (
        "resume",
        LabsatClient.resume,
        "Resume a paused job, or queue an ended calibrate or train job again from its last checkpoint.",
    ),
)
"""The commands that act on one job: name, client call, help."""


def _job_command(name: str, action: Callable[[LabsatClient, str], Job], doc: str) -> None:
    """Register ``labsat NAME JOB``: one call of the service, the job's new state as a table."""

    def command(
        job_id: JobArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None, as_json: JsonOption = False
    ) -> None:
        with LabsatClient(url, token) as client:
            job = action(client, job_id)
        emit(job.model_dump(mode="json"), [jobs_table([job])], as_json)

    command.__doc__ = doc
    app.command(name=name)(user_errors(command))


for _name, _action, _doc in _JOB_ACTIONS:
    _job_command(_name, _action, _doc)


@app.command()
@user_errors
def stop(
    bench: BenchArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Emergency stop: refuse further writes, drive every output to its safe value, cancel the bench's running
    and queued jobs (needs an operate token)."""
    with LabsatClient(url, token) as client:
        result = client.emergency_stop(bench)
    table = Table(title=f"emergency stop: bench {result.bench}")
    table.add_column("cancelled jobs")
    table.add_column("outputs after the stop (V)", overflow="fold")
    outputs = "; ".join(f"{device}: {value_text('', values)}" for device, values in result.outputs.items())
    table.add_row(", ".join(result.cancelled) or "none", outputs or "-")
    emit(result.model_dump(mode="json"), [table], as_json)


@app.command()
@user_errors
def models(
    bench: Annotated[str | None, typer.Option(help="Only models trained on this bench.")] = None,
    method: Annotated[str | None, typer.Option(help="Only models trained with this method (pat+sat, bp...).")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a service's trained models, newest first, with their test accuracy on the device."""
    with LabsatClient(url, token) as client:
        listed = client.models(bench=bench, method=method)
    table = Table(title="models")
    for column in ("id", "bench", "method", "dataset", "device acc.", "created"):
        table.add_column(column, no_wrap=column == "id", justify="right" if column == "device acc." else "left")
    for model in listed:
        accuracy = model.metadata.get("test_accuracy_device")
        table.add_row(
            model.id,
            model.bench,
            model.method,
            str(model.metadata.get("dataset", "-")),
            value_text("accuracy", accuracy),
            model.created.strftime("%Y-%m-%d %H:%M"),
        )
    emit([model.model_dump(mode="json") for model in listed], [table], as_json)


@app.command()
@user_errors
def deploy(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Model id, or a unique prefix of it.")],
    bench: Annotated[str | None, typer.Option(help="Bench to deploy on (default: the service's only bench).")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy a trained model: a job that programs it onto the bench and measures its test accuracy there."""
    with LabsatClient(url, token) as client:
        job = client.deploy(model, bench)
    emit(job.model_dump(mode="json"), [jobs_table([job])], as_json)
    if not as_json:
        follow_hint(job)
