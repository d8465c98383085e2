"""Client commands for a running service: ``labsat submit``, ``labsat jobs``, ``labsat watch``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labsat.cli.app import JsonOption, app, console, emit, user_errors
from labsat.client import DEFAULT_URL, LabsatClient
from labsat.errors import LabsatError
from labsat.jobs.model import Job, JobState

UrlOption = Annotated[str, typer.Option("--url", envvar="LABSAT_URL", help="The service's address.")]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="LABSAT_TOKEN", help="Bearer token (read scope to look, operate to submit)."),
]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs into a nested dict: values are JSON where they parse (``5``, ``[16, 8]``, ``true``),
    text otherwise; dots in a key nest (``options.sweep_points=48``)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise LabsatError(f"{item!r} is not KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        *parents, leaf = key.split(".")
        node = params
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise LabsatError(f"{key!r}: {parent!r} is given both as a value and as a group")
        node[leaf] = value
    return params


def _jobs_table(jobs: list[Job]) -> Table:
    table = Table(title="jobs")
    for column in ("id", "kind", "bench", "state", "progress", "created", "by"):
        table.add_column(column, no_wrap=column in ("id", "created"))
    for job in jobs:
        progress = job.progress
        done = ""
        if progress is not None:
            done = f"{progress.phase} {progress.done:g}" + (f"/{progress.total:g}" if progress.total else "")
        table.add_row(
            job.id,
            job.kind,
            job.bench,
            job.state,
            done,
            job.created.strftime("%Y-%m-%d %H:%M:%S"),
            job.submitted_by or "",
        )
    return table


def _result_table(job: Job) -> Table:
    table = Table(title=f"{job.kind} job {job.id}: {job.state}")
    table.add_column("")
    table.add_column("value", overflow="fold")
    if job.error:
        table.add_row("error", job.error)
    for key, value in (job.result or {}).items():
        if not isinstance(value, dict):
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


@app.command()
@user_errors
def submit(
    kind: Annotated[str, typer.Argument(help="calibrate, train, evaluate or deploy.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE parameter (repeat), e.g. -p epochs=5.")
    ] = None,
    bench: Annotated[str | None, typer.Option(help="Bench name on the service (default: its only bench).")] = None,
    watch_it: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job to a running service."""
    with LabsatClient(url, token) as client:
        job = client.submit(kind, parse_params(param or []), bench=bench)
        if watch_it:
            _watch(client, job.id, as_json)
            return
    emit(job.model_dump(mode="json"), [_jobs_table([job])], as_json)


@app.command()
@user_errors
def jobs(
    bench: Annotated[str | None, typer.Option(help="Only this bench's jobs.")] = None,
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a service's jobs, newest first."""
    with LabsatClient(url, token) as client:
        listed = client.jobs(bench=bench, state=state, kind=kind, limit=limit)
    emit([job.model_dump(mode="json") for job in listed], [_jobs_table(listed)], as_json)


@app.command()
@user_errors
def watch(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live (progress bar from its event stream); exit code 0 only if it succeeds."""
    with LabsatClient(url, token) as client:
        _watch(client, job_id, as_json)


def _watch(client: LabsatClient, job_id: str, as_json: bool) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=as_json, transient=False) as progress:
        task = progress.add_task(job_id, total=None, status="")
        for event in client.stream(job_id):
            data = event.data
            if event.type == "progress":
                values = "  ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in data["values"].items()
                )
                progress.update(
                    task,
                    description=data["phase"] or job_id,
                    completed=data["done"],
                    total=data["total"],
                    status=values,
                )
            elif event.type == "state":
                progress.update(task, status=data["state"])
            elif event.type == "log":
                progress.console.print(f"[dim]{data['message']}[/]")
    job = client.job(job_id)
    emit(job.model_dump(mode="json"), [_result_table(job)], as_json)
    if job.state is not JobState.SUCCEEDED:
        raise typer.Exit(1)


@app.command(name="clear-fault")
@user_errors
def clear_fault(
    bench: Annotated[str, typer.Argument(metavar="BENCH", help="Bench name on the service.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lift a bench's latched fault once you have inspected the bench (needs an admin token); writes nothing."""
    with LabsatClient(url, token) as client:
        result = client.clear_fault(bench)
    lifted = f"cleared: {result.cleared}" if result.cleared else "had no fault"
    table = Table(title=f"bench {result.bench}")
    table.add_column("fault")
    table.add_column("state")
    table.add_row(lifted, result.state)
    emit(result.model_dump(mode="json"), [table], as_json)
