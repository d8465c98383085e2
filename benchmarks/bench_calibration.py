"""Benchmark: device queries and bench time of a calibration, and what sweeping rows in parallel saves.

1. The ring heater sweeps two ways on the default simulated bench: every ring of a column at once
   (one ring per detector row, ``parallel_rows``) against one ring at a time. Programs (heater maps
   written, ramped and settled), samples (detector readings) and the bench time the virtual clock
   accumulates are counted by the System; the cut must be at least the number of detector rows.
2. A full default calibration: the same counts per procedure, and the twin's error on held-out points.

Bench time is the virtual clock's estimate of the real bench (ramp steps, settling, bus latency,
sampling); wall time is what the simulation took here. Results are printed and written to
``benchmarks/RESULTS.md`` as this script's own section (replaced when re-run; other sections are kept).

Usage: ``python benchmarks/bench_calibration.py [--sweep-points 96] [--no-write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from results import add_write_option, publish

from labsat.bench import builtin_bench_path, open_bench
from labsat.calibration import CalibrationOptions, CalibrationRecord, calibrate
from labsat.store import Store

SECTION = "bench_calibration"


def run(options: CalibrationOptions, only: list[str] | None) -> tuple[CalibrationRecord, float]:
    """One calibration on a fresh copy of the default bench (its own store); returns it and the wall time."""
    with (
        tempfile.TemporaryDirectory() as folder,
        open_bench(builtin_bench_path(), torch_device=torch.device("cpu")) as bench,
    ):
        started = time.perf_counter()
        record = calibrate(bench, Store(Path(folder)), only=only, options=options)
        return record, time.perf_counter() - started


SWEEP_MODES = (
    ("one ring at a time", {"parallel_rows": False}),
    ("parallel rows (a column at once)", {"parallel_rows": True, "parallel_columns": False}),
    ("parallel rows and columns (default)", {"parallel_rows": True, "parallel_columns": True}),
)


def sweep_rows(points: int) -> tuple[list[dict[str, Any]], int]:
    rows, bank_rows = [], 0
    for mode, switches in SWEEP_MODES:
        record, wall = run(CalibrationOptions(sweep_points=points, **switches), ["detectors", "modulators", "rings"])
        assert record.rings is not None
        bank_rows = record.rows
        rows.append(
            {
                "mode": mode,
                "programs": record.rings.cost.programs,
                "samples": record.rings.cost.samples,
                "bench_s": record.rings.cost.bench_time_s,
                "wall_s": wall,
                "fitted": sum(fit is not None for row in record.rings.fits for fit in row),
            }
        )
    return rows, bank_rows


def full_rows(points: int) -> tuple[list[dict[str, Any]], CalibrationRecord, float]:
    record, wall = run(CalibrationOptions(sweep_points=points), None)
    rows = []
    for name in record.procedures:
        result = record.result(name)
        assert result is not None
        rows.append({"procedure": name, **result.cost.model_dump(), "quality": result.quality()})
    return rows, record, wall


def render(
    points: int,
    sweeps: list[dict[str, Any]],
    bank_rows: int,
    full: list[dict[str, Any]],
    record: CalibrationRecord,
    full_wall: float,
    command: str,
) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    lines = [
        "## Calibration: queries and bench time (`bench_calibration.py`)",
        "",
        f"`{command}` — {stamp}, nproc {os.cpu_count()}, load average {load:.1f} at the end, "
        f"torch {torch.__version__}, default simulated bench (8×8, seed 7, virtual clock), {points} heater powers "
        "per ring sweep.",
        "",
        "Ring heater sweeps (detector dark/noise and modulator curves first, not counted here):",
        "",
        "| mode | programs | samples | bench time (s) | wall time (s) | rings fitted |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in sweeps:
        lines.append(
            f"| {row['mode']} | {row['programs']} | {row['samples']} | {row['bench_s']:.2f} | {row['wall_s']:.1f} "
            f"| {row['fitted']} |"
        )
    single = sweeps[0]
    lines.append("")
    for row in sweeps[1:]:
        lines.append(
            f"- {row['mode']} against one ring at a time: programs ÷{single['programs'] / row['programs']:.2f}, "
            f"samples ÷{single['samples'] / row['samples']:.2f}, bench time ÷{single['bench_s'] / row['bench_s']:.2f} "
            f"(detector rows: {bank_rows}; required ≥ {bank_rows})"
        )
    lines += [
        "",
        f"Full calibration with the default options (wall time {full_wall:.1f} s):",
        "",
        "| procedure | programs | samples | bench time (s) | fit quality |",
        "|---|---:|---:|---:|---|",
    ]
    for row in full:
        lines.append(
            f"| {row['procedure']} | {row['programs']} | {row['samples']} | {row['bench_time_s']:.2f} "
            f"| {row['quality']} |"
        )
    total_programs = sum(row["programs"] for row in full)
    total_time = sum(row["bench_time_s"] for row in full)
    validation = record.validation
    assert validation is not None and validation.weight_rms is not None
    lines += [
        f"| **total** | {total_programs} | {sum(row['samples'] for row in full)} | {total_time:.2f} | "
        f"twin vs device {validation.weight_rms:.3g} RMS per weight on {validation.samples} held-out points |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-points", type=int, default=CalibrationOptions().sweep_points)
    add_write_option(parser)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_calibration.py", *(argv if argv is not None else sys.argv[1:])])
    sweeps, bank_rows = sweep_rows(args.sweep_points)
    full, record, wall = full_rows(args.sweep_points)
    body = render(args.sweep_points, sweeps, bank_rows, full, record, wall, command)
    for row in sweeps[1:]:
        cut = sweeps[0]["programs"] / row["programs"]
        if cut < bank_rows:
            print(body)
            raise SystemExit(f"{row['mode']} cuts queries only {cut:.2f}×, less than the {bank_rows} detector rows")
    publish(SECTION, body, args)


if __name__ == "__main__":
    main()
