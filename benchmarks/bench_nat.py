"""NAT's noise model on the default simulated bench: what it fits, and what it buys under drift.

Usage: ``python benchmarks/bench_nat.py [--seeds 3] [--epochs 20]``

The bank is calibrated once; its layer is the one ``labsat train`` uses (:func:`labsat.training.session.bench_layer`,
whose twin models the chip's temperature). Per seed, digits (full 450-image test split) is trained in silico with
control-space BP and with NAT at several drift scales (``noise_drift``; 0 is read and control noise alone), each
run's noise fitted on the device. After training the chip's temperature is changed (``chip.set_ambient``) and every
model is tested on the device. Writes its section of benchmarks/RESULTS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from results import add_write_option, mean_std, publish

from labsat.bench import builtin_bench_path, open_bench
from labsat.datasets import load_dataset
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy_under_drift
from labsat.training.loop import train
from labsat.training.session import bench_layer
from labsat.truth import SIMULATED_CHIP

DRIFTS_K = (0.0, -0.5, -1.0, -2.0)
RUNS: tuple[tuple[str, str, float], ...] = (
    ("bp-control", "bp-control", 0.0),
    ("nat, no drift term", "nat", 0.0),
    ("nat, drift 0.5 K (default)", "nat", 0.5),
    ("nat, drift 1 K", "nat", 1.0),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    table: dict[str, list[list[float]]] = {name: [] for name, *_ in RUNS}
    validation: dict[str, list[float]] = {name: [] for name, *_ in RUNS}
    sigmas: dict[str, list[tuple[float, float, float]]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, open_bench(builtin_bench_path()) as bench:
        physical, record, _ = bench_layer(bench, Store(Path(folder)), 10)
        chip = bench.shared[SIMULATED_CHIP]
        for seed in seeds:
            dataset = load_dataset("digits", seed=seed)
            for name, method, drift in RUNS:
                config = TrainConfig(method=method, seed=seed, epochs=args.epochs, noise_drift=drift)
                result = train(config, physical, dataset)
                row = accuracy_under_drift(result.net, dataset.test, physical, chip, DRIFTS_K)
                table[name].append(row)
                validation[name].append(result.validation_accuracy[-1])
                if result.noise is not None:
                    noise = result.noise
                    sigmas.setdefault(name, []).append((noise.read_sigma, noise.control_sigma, noise.drift_sigma))
                print(f"seed {seed} {name}: {[round(100 * a, 1) for a in row]}", file=sys.stderr, flush=True)
    total = time.perf_counter() - started

    lines = [
        f"## NAT's fitted noise under drift (`bench_nat.py`, {date.today()}, nproc {os.cpu_count()})",
        "",
        f"`python benchmarks/bench_nat.py --seeds {args.seeds} --epochs {args.epochs}` — {total / 60:.1f} min, "
        f"calibration {record.id}.",
        "",
        f"Digits, device test accuracy (%, mean ± std over seeds {', '.join(map(str, seeds))}), uniform drift "
        "after training; validation accuracy on the twin after the last epoch:",
        "",
        "| method | validation | " + " | ".join(f"{d:g} K" for d in DRIFTS_K) + " |",
        "|---|---:|" + "---:|" * len(DRIFTS_K),
    ]
    for name, *_ in RUNS:
        columns = [mean_std([row[i] for row in table[name]]) for i in range(len(DRIFTS_K))]
        lines.append(f"| {name} | {mean_std(validation[name])} | " + " | ".join(columns) + " |")
    lines += [
        "",
        "Fitted σ (mean over seeds): read noise per max input, control noise (V), drift mapped to controls (V):",
        "",
    ]
    for name, entries in sigmas.items():
        read, control, drift = (sum(column) / len(column) for column in zip(*entries, strict=True))
        lines.append(f"- {name}: σ_read {read:.2g}, σ_control {control:.2g} V, σ_drift {drift:.2g} V")
    publish("bench_nat", "\n".join(lines), args)


if __name__ == "__main__":
    main()
