"""Training methods on the simulated MZI mesh ("device A", σ_ph = σ_bs = 0.15) and transfer to fresh devices.

Usage: ``python benchmarks/bench_mzi.py [--seeds 3] [--epochs 30] [--devices 5] [--rho 0.3]``

Digits projected onto 10 principal components (amplitudes in [0, 1], :func:`mesh_inputs`), two 10-mode
mesh layers with a digital per-feature affine between and after (``PhotonicNet((10, 10, 10))``). The twin
is the *design* mesh (50:50 couplers, no phase errors: no calibration), so, as in the SAT paper, offline
BP (``bp-control``) and in-silico SAT (``sat``) never see device A, PAT runs its forward on it, and
PAT+SAT does both SAT passes on it. Every model is tested on device A (full 450-image test split, through
the guarded instruments), then deployed without retraining on ``--devices`` fresh chips (bench seeds
after device A's, same σ). Rewrites its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from results import write_section

from labsat.bench import open_bench
from labsat.benchfile import load_bench_file
from labsat.datasets import load_dataset
from labsat.training.evaluate import accuracy
from labsat.training.loop import TrainConfig, train
from labsat.training.mzi import mesh_inputs, mesh_physical_layer
from labsat.training.runners import device_runner

CONFIG = Path(__file__).resolve().parents[1] / "config" / "sim-mzi.yaml"
METHODS = ("bp-control", "pat", "sat", "pat+sat")
LABELS = {"bp-control": "offline BP", "pat": "PAT", "sat": "SAT (in silico)", "pat+sat": "PAT+SAT"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument("--rho", type=float, default=0.3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    spec = load_bench_file(CONFIG)
    dataset = mesh_inputs(load_dataset("digits"), spec.system.modes)
    device_a: dict[str, list[float]] = {m: [] for m in METHODS}
    fresh: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in range(args.seeds):
        for method in METHODS:
            with open_bench(spec, torch_device=torch.device("cpu")) as bench:
                system = bench.system
                physical = mesh_physical_layer(system, system.nominal_twin().layer)
                config = TrainConfig(
                    method=method, epochs=args.epochs, batch_size=64, hidden=(10,), lr=0.05, digital_lr=0.05,
                    rho=args.rho, adaptive=False, seed=seed,
                )  # fmt: skip
                net = train(config, physical, dataset).net
                device_a[method].append(accuracy(net, dataset.test, device_runner(physical)))
            for k in range(1, args.devices + 1):
                other = spec.model_copy(update={"seed": spec.seed + 1000 * k})
                with open_bench(other, torch_device=torch.device("cpu")) as bench:
                    physical = mesh_physical_layer(bench.system, bench.system.nominal_twin().layer)
                    fresh[method].append(accuracy(net, dataset.test, device_runner(physical)))
            print(method, seed, device_a[method][-1], statistics.mean(fresh[method][-args.devices :]), flush=True)

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"

    rows = [
        f"| {LABELS[m]} | {cell(device_a[m])} | {cell(fresh[m])} | "
        f"{100 * statistics.mean(fresh[m]) / max(statistics.mean(device_a[m]), 1e-9):.0f} % |"
        for m in METHODS
    ]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "## MZI mesh, device A (σ_ph = σ_bs = 0.15): methods and transfer",
        "",
        f"`python benchmarks/bench_mzi.py --seeds {args.seeds} --epochs {args.epochs} --devices {args.devices} "
        f"--rho {args.rho}` — {stamp}, nproc {os.cpu_count()}, CPU, wall {time.perf_counter() - started:.0f} s. "
        "Digits → 10 PCA amplitudes, two 10-mode Clements meshes (90 heaters each), design twin (uncalibrated); "
        f"accuracy on the full 450-image test split, mean ± std over {args.seeds} seeds; fresh = mean over "
        f"{args.devices} fresh chips per seed at σ = 0.15.",
        "",
        "| method | device A (%) | fresh devices (%) | fresh / device A |",
        "|---|---:|---:|---:|",
        *rows,
    ])  # fmt: skip
    print(body)
    write_section("bench_mzi", body)


if __name__ == "__main__":
    main()
