"""One cell: train on a fresh default simulated bench and take the spec's measures.

Every cell opens its own bench, so no chip state (drift, instrument noise streams) passes from one cell to
the next: a cell's numbers depend only on its settings and seeds, whichever worker runs it. The bench's
calibration is deterministic and is kept per process in a private store, so a worker calibrates once.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from labsat.bench import builtin_bench_path, open_bench
from labsat.benchfile import load_bench_file
from labsat.datasets import load_dataset
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy
from labsat.training.loop import train
from labsat.training.runners import device_runner
from labsat.training.session import bench_layer
from labsat.truth import SIMULATED_CHIP

_PROCESS_STORE: Store | None = None
SWEEP_KEYS = ("dataset", "measure", "drift_k")


def _store() -> Store:
    global _PROCESS_STORE
    if _PROCESS_STORE is None:
        _PROCESS_STORE = Store(Path(tempfile.mkdtemp(prefix="labsat-sweep-")))
    return _PROCESS_STORE


def run_cell(params: dict[str, Any]) -> dict[str, Any]:
    """The cell's measures: scalars, and ``drift`` as one accuracy per ``drift_k`` value."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    config = TrainConfig(**{k: v for k, v in params.items() if k not in SWEEP_KEYS})
    dataset = load_dataset(params["dataset"], seed=config.seed)
    torch.manual_seed(config.seed)
    # Opened from its parsed spec, not its file: the simulated bench is private to the cell, so parallel
    # cells do not contend for the file's ownership lock (its addresses are simulator-private).
    with open_bench(load_bench_file(builtin_bench_path())) as bench:
        layer, _, _ = bench_layer(bench, _store(), dataset.n_classes)
        result = train(config, layer, dataset)
        values: dict[str, Any] = {}
        measures = params["measure"]
        if "accuracy" in measures:
            values["accuracy"] = accuracy(result.net, dataset.test, device_runner(layer))
        if "drift" in measures:
            chip = bench.shared[SIMULATED_CHIP]
            row = []
            for delta in params["drift_k"]:
                chip.set_ambient(delta)
                row.append(accuracy(result.net, dataset.test, device_runner(layer)))
            chip.set_ambient(0.0)
            values["drift"] = row
        cost = asdict(result.cost)
        if "forwards" in measures:
            values["forwards"] = float(cost["forwards"])
        if "bench_time" in measures:
            values["bench_time"] = float(cost["bench_time_s"])
    if "wall" in measures:
        values["wall"] = time.perf_counter() - started
    return values
