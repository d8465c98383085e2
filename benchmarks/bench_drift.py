"""The all-photonic bank at −2 K: what robust training holds there, and what a drift re-lock recovers.

Usage: ``python benchmarks/bench_drift.py [--seeds 3] [--epochs 20] [--pilot 32]``

The default simulated bench is calibrated once; every network is the ``labsat train`` digits network (64-16-10,
both layers photonic), trained in silico on the calibrated twin (no device query while training), per seed:

* ``bp-control``: control-space BP;
* ``sat``: SAT on the twin (the project's default ρ and adaptive scaling);
* ``sat + FD-SAT drift``: SAT with FD-SAT against the chip's temperature, two-sided (the drift's sign is not
  known in advance), probed through the twin's temperature model;
* each of those plus a **re-lock** after the drift: one pilot pass of ``--pilot`` unlabelled training images
  through the first layer on the device, the drift fitted on the twin, the controls re-solved for it
  (:mod:`labsat.training.relock`).

After training the simulated chip's temperature is changed (``chip.set_ambient``) and every model is tested on the
device over the full test split. Writes its section of benchmarks/RESULTS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from labsat.training.evaluate import accuracy
from labsat.training.loop import train
from labsat.training.physical import DRIFT
from labsat.training.relock import relock
from labsat.training.runners import device_runner
from labsat.training.session import bench_layer
from labsat.truth import SIMULATED_CHIP

DRIFTS_K = (0.0, -1.0, -2.0, 1.0, 2.0)
TRAINED: tuple[tuple[str, dict[str, object]], ...] = (
    ("bp-control", {"method": "bp-control"}),
    ("sat", {"method": "sat"}),
    ("sat + FD-SAT drift", {"method": "sat", "fd_disturbance": DRIFT, "fd_delta_max": 2.0, "fd_two_sided": True}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--pilot", type=int, default=32, help="unlabelled images in the re-lock's pilot pass")
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    rows: dict[str, list[list[float]]] = {}
    found: dict[str, list[list[float]]] = {}
    pilot_samples: list[int] = []
    pilot_time: list[float] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, open_bench(builtin_bench_path()) as bench:
        physical, record, _ = bench_layer(bench, Store(Path(folder)), 10)
        chip = bench.shared[SIMULATED_CHIP]
        n_test = 0
        for seed in seeds:
            dataset = load_dataset("digits", seed=seed)
            n_test = len(dataset.test)
            for name, options in TRAINED:
                config = TrainConfig.model_validate({"seed": seed, "epochs": args.epochs, **options})
                net = train(config, physical, dataset).net
                plain, relocked, estimates = [], [], []
                for delta in DRIFTS_K:
                    chip.set_ambient(delta)
                    plain.append(accuracy(net, dataset.test, device_runner(physical)))
                    result = relock(net, physical, dataset.train.x[: args.pilot])
                    relocked.append(accuracy(result.applied_to(net), dataset.test, device_runner(physical)))
                    estimates.append(result.delta_t_k)
                    pilot_samples.append(result.pilot.samples)
                    pilot_time.append(result.pilot.bench_time_s)
                chip.set_ambient(0.0)
                rows.setdefault(name, []).append(plain)
                rows.setdefault(f"{name} + re-lock", []).append(relocked)
                found.setdefault(name, []).append(estimates)
                print(
                    f"seed {seed} {name}: {[round(100 * a, 1) for a in plain]} re-lock "
                    f"{[round(100 * a, 1) for a in relocked]} ΔT found {[round(t, 2) for t in estimates]}",
                    file=sys.stderr,
                    flush=True,
                )
    total = time.perf_counter() - started
    lines = [
        f"## The all-photonic bank at −2 K: robust training and drift re-lock (`bench_drift.py`, {date.today()}, "
        f"nproc {os.cpu_count()})",
        "",
        f"`python benchmarks/bench_drift.py --seeds {args.seeds} --epochs {args.epochs} --pilot {args.pilot}` — "
        f"{total / 60:.1f} min, calibration {record.id}.",
        "",
        f"Digits (64-16-10, both layers photonic), trained in silico on the calibrated twin, {args.epochs} epochs. "
        f"Device test accuracy (%, mean ± std over seeds {', '.join(map(str, seeds))}, full test split of {n_test} "
        "images; chance 10 %) with the simulated chip's temperature changed after training:",
        "",
        "| method | " + " | ".join(f"{d:+g} K" for d in DRIFTS_K) + " |",
        "|---|" + "---:|" * len(DRIFTS_K),
    ]
    for name, runs in rows.items():
        columns = [mean_std([run[i] for run in runs]) for i in range(len(DRIFTS_K))]
        lines.append(f"| {name} | " + " | ".join(columns) + " |")
    lines += [
        "",
        f"Re-lock cost per drift point: one device forward of the first layer, {statistics.mean(pilot_samples):.0f} "
        f"samples, {1000 * statistics.mean(pilot_time):.0f} ms of estimated bench time; no device query to re-solve "
        "the controls (the twin does it). The drift the pilot fitted (K, mean over seeds and models):",
        "",
        "| true ΔT | " + " | ".join(f"{d:+g} K" for d in DRIFTS_K) + " |",
        "|---|" + "---:|" * len(DRIFTS_K),
    ]
    every = [estimate for runs in found.values() for estimate in runs]
    lines.append(
        "| fitted | " + " | ".join(f"{statistics.mean(e[i] for e in every):+.2f}" for i in range(len(DRIFTS_K))) + " |"
    )
    publish("bench_drift", "\n".join(lines), args)


if __name__ == "__main__":
    main()
