"""Scaling of ``labsat sweep`` on this machine: the same 16-cell sweep with 1 and with 2 workers.

Usage: ``python benchmarks/bench_sweep.py`` (runs benchmarks/sweeps/scaling.yaml twice, in fresh folders,
and prints the two wall times, their ratio, the mean cell cost of each and the load average before and after).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from labsat.sweep.engines import run_sweep
from labsat.sweep.spec import load_spec

SPEC = Path(__file__).parent / "sweeps" / "scaling.yaml"


def main() -> None:
    spec = load_spec(SPEC)
    load_before = os.getloadavg()
    walls: dict[int, float] = {}
    cell_walls: dict[int, list[float]] = {1: [], 2: []}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            counts = run_sweep(spec, Path(folder), workers=workers, show_progress=False)
            walls[workers] = time.perf_counter() - started
            assert counts["ok"] == 16, counts
            for record in (Path(folder) / "cells").glob("*.json"):
                cell_walls[workers].append(json.loads(record.read_text())["values"]["wall"])
    load_after = os.getloadavg()
    per_cell = {w: sum(walls_) / len(walls_) for w, walls_ in cell_walls.items()}
    print(f"nproc {os.cpu_count()}, load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("| workers | wall (s) | mean cell (s, calibration included) |\n|---:|---:|---:|")
    for workers in (1, 2):
        print(f"| {workers} | {walls[workers]:.1f} | {per_cell[workers]:.2f} |")
    print(f"speed-up 2 vs 1 workers: {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
