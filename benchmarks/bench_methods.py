"""Accuracy of the training methods on the default simulated bench: drift robustness and fabrication offsets.

Usage: ``python benchmarks/bench_methods.py [--seeds 3] [--epochs 20] [--pat-epochs 10]``

1. **Drift.** Digits (full 450-image test split), one network per method and seed: weight-space BP
   (trained on ideal weights, deployed through the calibrated twin), control-space BP (through the twin,
   ρ = 0) and PAT+SAT (device forward, twin backward, SAT with its ascent from PAT). After training the
   chip's temperature is changed (``chip.set_ambient``) and every model is tested *on the device* at
   0, −0.25, −0.5, −1 and −2 K.
2. **Fabrication offsets.** The same chip (σ_fab = 0.08 nm) with a twin that does not know its
   fabrication offsets (the calibrated twin with every ring's rest resonance set to the mean): in-silico
   BP deployed through that twin against PAT, whose forward pass is the chip itself.

The bench is opened without a data directory, so the simulated instruments keep no state file (a write
per ramp step would dominate the run). Prints markdown tables for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from results import mean_std

from labsat.bench import builtin_bench_path, open_bench
from labsat.datasets import load_dataset
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy
from labsat.training.loop import train
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner
from labsat.training.session import bench_twin
from labsat.truth import SIMULATED_CHIP
from labsat.twin import Twin

DRIFTS_K = (0.0, -0.25, -0.5, -1.0, -2.0)
DRIFT_METHODS = ("bp", "bp-control", "pat+sat")
OFFSET_METHODS = ("bp", "bp-control", "pat")


def nominal(twin: Twin) -> Twin:
    """The twin without the chip's fabrication offsets: every ring's rest resonance at the bank's mean."""
    design = copy.deepcopy(twin)
    with torch.no_grad():
        rest = design.model.rest_resonance_nm
        rest.fill_(float(rest.mean()))
    return design


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--pat-epochs", type=int, default=10, help="Epochs of the fabrication-offset runs.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    drift: dict[str, list[list[float]]] = {method: [] for method in DRIFT_METHODS}
    offsets: dict[str, list[float]] = {method: [] for method in OFFSET_METHODS}
    costs: dict[str, list[tuple[float, float, float]]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, open_bench(builtin_bench_path()) as bench:
        twin, record, _ = bench_twin(bench, Store(Path(folder)))
        log(f"calibration {record.id} ready after {time.perf_counter() - started:.0f} s")
        chip = bench.shared[SIMULATED_CHIP]
        calibrated = PhysicalLayer.from_system(bench.system, twin.layer)
        uninformed = PhysicalLayer.from_system(bench.system, nominal(twin).layer)
        for seed in seeds:
            dataset = load_dataset("digits", seed=seed)
            runs = [(m, calibrated, args.epochs, drift) for m in DRIFT_METHODS]
            runs += [(m, uninformed, args.pat_epochs if m == "pat" else args.epochs, offsets) for m in OFFSET_METHODS]
            for method, physical, epochs, table in runs:
                clock = time.perf_counter()
                result = train(TrainConfig(method=method, seed=seed, epochs=epochs), physical, dataset)
                wall = time.perf_counter() - clock
                if table is drift:
                    row = []
                    for delta in DRIFTS_K:
                        chip.set_ambient(delta)
                        row.append(accuracy(result.net, dataset.test, device_runner(physical)))
                    chip.set_ambient(0.0)
                    drift[method].append(row)
                    key = method
                else:
                    offsets[method].append(accuracy(result.net, dataset.test, device_runner(physical)))
                    row = offsets[method][-1:]
                    key = f"{method} (uninformed twin)"
                steps = max(len(result.steps), 1)
                costs.setdefault(key, []).append((result.cost.forwards / steps, result.cost.bench_time_s, wall))
                log(f"seed {seed} {key}: {[round(100 * a, 1) for a in row]} ({wall:.0f} s)")
    total = time.perf_counter() - started

    print(f"## Training methods on the default simulated bench ({date.today()}, nproc {os.cpu_count()})")
    print()
    print(
        f"`python benchmarks/bench_methods.py --seeds {args.seeds} --epochs {args.epochs} "
        f"--pat-epochs {args.pat_epochs}` — {total / 60:.1f} min, calibration {record.id}."
    )
    print()
    print(
        "Digits test accuracy on the device (%, mean ± std over seeds "
        f"{', '.join(map(str, seeds))}), uniform drift applied after training:"
    )
    print()
    print("| method | " + " | ".join(f"{d:g} K" for d in DRIFTS_K) + " |")
    print("|---|" + "---:|" * len(DRIFTS_K))
    for method in DRIFT_METHODS:
        columns = [mean_std([row[i] for row in drift[method]]) for i in range(len(DRIFTS_K))]
        print(f"| {method} | " + " | ".join(columns) + " |")
    print()
    print(
        "Per seed at −1 K: "
        + "; ".join(f"{m} {', '.join(f'{100 * row[3]:.1f}' for row in drift[m])}" for m in DRIFT_METHODS)
    )
    print()
    print("Chip with fabrication offsets (σ_fab = 0.08 nm), twin without them; device test accuracy at 0 K (%):")
    print()
    print("| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |")
    print("|---|" + "---:|" * (len(seeds) + 1))
    for method in OFFSET_METHODS:
        print(
            f"| {method} | "
            + " | ".join(f"{100 * a:.1f}" for a in offsets[method])
            + f" | {mean_std(offsets[method])} |"
        )
    print()
    print("| run | device layer-forwards / step | bench time / run (s) | wall / run (s) |")
    print("|---|---:|---:|---:|")
    for key, entries in costs.items():
        forwards, bench_s, wall = (statistics.mean(column) for column in zip(*entries, strict=True))
        print(f"| {key} | {forwards:g} | {bench_s:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
