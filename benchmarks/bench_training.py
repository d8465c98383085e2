"""Device queries per training step for every method and SAT ascent, on the default simulated bench.

Usage: ``python benchmarks/bench_training.py [--steps N] [--batch-size B]``

Each row trains a fresh network for ``--steps`` optimizer steps on digits (64-16-10: 16 + 4 tiles per
network forward) and reports what the System counted per step: network-level forwards per photonic layer,
tile programs, samples streamed, and estimated bench time, plus this machine's wall time per step.
The FD ascent needs two network forwards per control (1184 controls on digits, ≈ 2369 forwards a step,
hours of simulation), so it is measured on iris (4-16-3, 112 controls) and only *computed* for digits.
Prints a markdown table (paste it into benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from labsat.bench import builtin_bench_path, open_bench
from labsat.datasets import load_dataset
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.loop import Trainer
from labsat.training.physical import PhysicalLayer
from labsat.training.session import bench_twin

ROWS: list[tuple[str, str | None]] = [
    ("bp", None),
    ("bp-control", None),
    ("nat", None),
    ("pat", None),
    ("dat", None),
    ("sat", None),
    ("sat", "pat"),
    ("sat", "spsa"),
    ("pat+sat", None),
    ("pat+sat", "twin"),
    ("pat+sat", "spsa"),
    ("dat+sat", None),
    ("nat+sat", None),
]


def measure(
    physical: PhysicalLayer,
    dataset_name: str,
    method: str,
    ascent: str | None,
    steps: int,
    batch: int,
    after_warmup: Callable[[], None] | None = None,
) -> dict:
    """Per-step queries of ``steps`` steps after a warm-up step; ``after_warmup`` runs between them (to reset a
    caller's own counters)."""
    dataset = load_dataset(dataset_name, seed=0)
    config = TrainConfig(method=method, ascent=ascent, batch_size=batch, spsa_q=4)
    trainer = Trainer(config, physical, dataset)
    x, y = dataset.train.x[:batch], dataset.train.y[:batch]
    trainer.step(x, y, 0)  # warm-up: NAT's one-off noise fit, lazy imports, allocator
    if after_warmup is not None:
        after_warmup()
    before, started = physical.stats(), time.perf_counter()
    for index in range(steps):
        trainer.step(x, y, index)
    cost = physical.stats().since(before)
    return {
        "dataset": dataset_name,
        "method": method,
        "ascent": trainer.method.ascent or "-",
        "forwards": cost.forwards / steps / trainer.net.depth,
        "programs": cost.programs / steps,
        "samples": cost.samples / steps,
        "bench_s": cost.bench_time_s / steps,
        "wall_s": (time.perf_counter() - started) / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as folder, open_bench(builtin_bench_path()) as bench:
        twin, _, _ = bench_twin(bench, Store(Path(folder)))
        physical = PhysicalLayer.from_system(bench.system, twin.layer)
        for method, ascent in ROWS:
            rows.append(measure(physical, "digits", method, ascent, args.steps, args.batch_size))
            print(rows[-1], file=sys.stderr, flush=True)
        for method, ascent in (("pat", None), ("pat+sat", "fd"), ("pat+sat", "spsa")):
            rows.append(measure(physical, "iris", method, ascent, 1, args.batch_size))
            print(rows[-1], file=sys.stderr, flush=True)
    fd_digits_controls = 64 * 16 + 16 * 10
    print(f"Device queries per training step (batch {args.batch_size}, nproc {os.cpu_count()}):")
    print()
    print("| dataset | method | ascent | forwards / layer | tile programs | samples | bench time (s) | wall (s) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['method']} | {r['ascent']} | {r['forwards']:g} | {r['programs']:g} | "
            f"{r['samples']:g} | {r['bench_s']:.3f} | {r['wall_s']:.3f} |"
        )
    per_forward = next(r for r in rows if r["dataset"] == "digits" and r["method"] == "pat")
    fd_forwards = 2 * fd_digits_controls + 1
    print(
        f"| digits | pat+sat | fd (computed) | {fd_forwards} | {fd_forwards * per_forward['programs']:g} | "
        f"{fd_forwards * per_forward['samples']:g} | {fd_forwards * per_forward['bench_s']:.1f} | - |"
    )


if __name__ == "__main__":
    main()
