"""Running the cells: a local process pool by default, Ray (local or a lab's cluster) when asked.

Both engines call the same :func:`~labsat.sweep.cell.run_cell` with the same settings, so they give the
same numbers; they differ only in where a cell runs. A failed cell is recorded and the others go on.
``inline`` runs them one after another in this process; ``bench`` does too, but on a bench the caller has
open (the service's own bench, real hardware: :func:`~labsat.sweep.cell.run_cell_on`), through its guard.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labsat.sweep.cell import run_cell, run_cell_on
from labsat.sweep.grid import Cell, cells
from labsat.sweep.spec import SweepSpec
from labsat.sweep.store import CellStore

if TYPE_CHECKING:
    from labsat.bench import Bench
    from labsat.store import Store


def _safe_cell(params: dict[str, Any], run: Callable[[dict[str, Any]], dict[str, Any]] = run_cell) -> dict[str, Any]:
    """A cell's record: its values, or its error (a failure must not stop the sweep)."""
    try:
        return {"status": "ok", "params": params, "values": run(params)}
    except Exception as error:
        return {
            "status": "failed",
            "params": params,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }


Submit = Callable[[list[Cell], Callable[[Cell, dict[str, Any]], None]], None]


def _inline(run: Callable[[dict[str, Any]], dict[str, Any]] = run_cell) -> Submit:
    """Every cell in this process, one after another, by ``run``: for a caller that must stop between two cells
    (a job). A cell runs torch on one thread (as in a worker process); the caller's thread count comes back."""

    def submit(todo: list[Cell], finish: Callable[[Cell, dict[str, Any]], None]) -> None:
        threads = torch.get_num_threads()
        try:
            for cell in todo:
                record = _safe_cell(cell.params, run)
                torch.set_num_threads(threads)
                finish(cell, record)
        finally:
            torch.set_num_threads(threads)

    return submit


def _pool(workers: int) -> Submit:
    def submit(todo: list[Cell], finish: Callable[[Cell, dict[str, Any]], None]) -> None:
        context = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            futures = {pool.submit(_safe_cell, cell.params): cell for cell in todo}
            for future in concurrent.futures.as_completed(futures):
                finish(futures[future], future.result())
        except BaseException:  # a stop from ``finish`` (a cancelled job): cells not yet started never start
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    return submit


def _ray(workers: int, address: str | None) -> Submit:
    def submit(todo: list[Cell], finish: Callable[[Cell, dict[str, Any]], None]) -> None:
        try:
            import ray
        except ImportError as error:
            raise RuntimeError("the Ray engine needs the ray extra: pip install 'labsat[ray]'") from error
        started_here = not ray.is_initialized()
        if started_here:
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            remote = ray.remote(num_cpus=1)(_safe_cell)
            pending = {remote.remote(cell.params): cell for cell in todo}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    finish(pending.pop(ref), ray.get(ref))
        finally:
            if started_here:
                ray.shutdown()

    return submit


def run_sweep(
    spec: SweepSpec,
    folder: Path,
    *,
    engine: str = "local",
    workers: int = 2,
    address: str | None = None,
    show_progress: bool = True,
    on_cell: Callable[[dict[str, int], int], None] | None = None,
    bench: tuple[Bench, Store] | None = None,
) -> dict[str, int]:
    """Run every cell of ``spec`` not yet stored under ``folder``; returns counts of skipped, ok and failed.

    ``engine`` is ``local`` (a process pool of ``workers``), ``ray`` (or any ``address``), or ``inline`` (this
    process, one cell at a time), or ``bench``: one at a time on the given open bench, its twin from the given
    store. ``on_cell(counts, total)`` follows every stored cell; an exception it raises stops the sweep after the
    cells already running, and the stored cells stay for a resume.
    """
    store = CellStore(folder)
    grid = cells(spec)
    todo = [cell for cell in grid if not store.done(cell.id)]
    counts = {"skipped": len(grid) - len(todo), "ok": 0, "failed": 0}
    if engine == "bench":
        if bench is None:
            raise ValueError("engine 'bench' needs an open bench and its store")
        opened, store_of_bench = bench
        submit = _inline(lambda params: run_cell_on(opened, store_of_bench, params))
    elif engine == "ray" or address:
        submit = _ray(workers, address)
    else:
        submit = _inline() if engine == "inline" else _pool(workers)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task(f"{spec.name} ({min(workers, len(todo))} running)", total=len(todo), failed=0)

        def finish(cell: Cell, record: dict[str, Any]) -> None:
            store.put(cell.id, record)
            counts[record["status"]] += 1
            progress.update(task, advance=1, failed=counts["failed"])
            if on_cell is not None:
                on_cell(dict(counts), len(grid))

        if todo:
            submit(todo, finish)
    return counts
