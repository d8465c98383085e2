"""Every training method on the default simulated bench: drift robustness and fabrication offsets.

Usage: ``python benchmarks/bench_methods.py [--seeds 3] [--epochs 20] [--rhos 0.25,0.5,1] [--log FILE]
[--budget-min M] [--no-write]``

1. **Drift.** Digits (full 450-image test split), one 64-16-10 network per method and seed: ``bp`` (trained on
   ideal weights, deployed through the calibrated twin), ``bp-control``, ``nat``, ``pat``, ``dat``, ``sat``,
   ``nat+sat``, ``pat+sat``, ``dat+sat``, and the SAM variants against plain ``sat`` (in silico, twin ascent):
   SSAM-F (Fisher mask), SSAM-D (dynamic mask with its drop-rate schedule) and GSAM. After training the
   chip's temperature is changed (``chip.set_ambient``) and every model is tested *on the device*.
2. **Fabrication offsets.** The same chip (σ_fab = 0.08 nm) with a twin that does not know its fabrication
   offsets (every ring's rest resonance at the mean): in-silico BP deployed through that twin against PAT,
   whose forward pass is the chip itself.

**Hyperparameters come from the validation split** (15 % of the training split, seeded and stratified, never
trained on); the test split is read only for the final numbers. Per seed, SAT's ρ is the one of ``--rhos``
whose in-silico ``sat`` network scores best on the validation split on the device, averaged over 0 K and −1 K
(the drift the bench is about); every SAT row of that seed uses it. SSAM's sparsity and GSAM's α are chosen
the same way from their small grids, at that ρ. The winning candidate is the row (no retraining).

Each finished run is appended to ``--log`` (JSON lines); a rerun with the same log skips what is there, so an
interrupted bench resumes. ``--budget-min`` stops starting new runs after that many minutes and tables what
is done (each row says over how many seeds). Runs one after another on one CPU thread.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import torch
from results import accuracy_under_drift, add_write_option, mean_std, publish

from labsat.bench import builtin_bench_path, open_bench
from labsat.datasets import Dataset, load_dataset
from labsat.store import Store
from labsat.training.config import TrainConfig
from labsat.training.loop import TrainResult, train
from labsat.training.physical import PhysicalLayer
from labsat.training.session import bench_twin
from labsat.truth import SIMULATED_CHIP
from labsat.twin import Twin

DRIFTS_K = (0.0, -0.5, -1.0, -2.0, 1.0, 2.0)
SELECT_K = (0.0, -1.0)
"""Drifts whose mean device validation accuracy chooses the hyperparameters."""
PLAIN = ("bp", "bp-control", "nat", "pat", "dat")
SAT = ("sat", "nat+sat", "pat+sat", "dat+sat")
VARIANTS: dict[str, tuple[str, tuple[float, ...], dict[str, Any]]] = {
    "SSAM-F": ("sparsity", (0.5, 0.8), {"mask": "fisher"}),
    "SSAM-D": ("sparsity", (0.5, 0.8), {"mask": "dynamic"}),
    "GSAM": ("gsam_alpha", (0.1, 0.3), {}),
}
"""Row → (its own hyperparameter, the grid it is chosen from, fixed options); all are ``sat`` at the seed's ρ."""
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


class Runs:
    """The finished runs, keyed by (seed, run name), kept in a JSON-lines log so an interrupted bench resumes."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path = path
        self.budget_s = budget_s
        self.started = time.perf_counter()
        self.done: dict[tuple[int, str], dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                self.done[(record["seed"], record["run"])] = record

    @property
    def out_of_time(self) -> bool:
        return time.perf_counter() - self.started > self.budget_s

    def get(
        self,
        seed: int,
        name: str,
        options: dict[str, Any],
        physical: PhysicalLayer,
        dataset: Dataset,
        chip: Any,
        epochs: int,
    ) -> dict[str, Any] | None:
        """The run's record: from the log, or trained and tested now (None: out of time budget)."""
        if (seed, name) in self.done:
            return self.done[(seed, name)]
        if self.out_of_time:
            return None
        config = TrainConfig.model_validate({"seed": seed, "epochs": epochs, **options})
        clock = time.perf_counter()
        result = train(config, physical, dataset)
        wall = time.perf_counter() - clock
        assert dataset.validation is not None
        record = {
            "seed": seed,
            "run": name,
            "options": options,
            "epochs": epochs,
            "validation": accuracy_under_drift(result.net, dataset.validation, physical, chip, SELECT_K),
            "test": accuracy_under_drift(result.net, dataset.test, physical, chip, DRIFTS_K),
            "n_test": len(dataset.test),
            "forwards_per_step": result.cost.forwards / max(len(result.steps), 1),
            "bench_s": result.cost.bench_time_s,
            "wall_s": wall,
            "noise": _noise(result),
        }
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        self.done[(seed, name)] = record
        elapsed_min = (time.perf_counter() - self.started) / 60
        log(
            f"seed {seed} {name}: validation {[round(100 * a, 1) for a in record['validation']]} test "
            f"{[round(100 * a, 1) for a in record['test']]} ({wall:.0f} s, {elapsed_min:.1f} min in)"
        )
        return record


def _noise(result: TrainResult) -> dict[str, float] | None:
    """The σ NAT injected, as recorded with the model (None: not a NAT run)."""
    if result.noise is None:
        return None
    return {key: float(value) for key, value in vars(result.noise).items() if isinstance(value, int | float)}


def score(record: dict[str, Any]) -> float:
    return statistics.mean(record["validation"])


def best(records: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The candidate with the best validation score (None while any candidate is missing)."""
    if any(r is None for r in records):
        return None
    return max(records, key=lambda r: score(r))  # type: ignore[arg-type,return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rhos", default="0.25,0.5,1", help="SAT radii chosen from on the validation split")
    parser.add_argument("--log", type=Path, default=None, help="JSON-lines log of finished runs (resumes from it)")
    parser.add_argument("--budget-min", type=float, default=float("inf"), help="start no run after this long")
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rhos = [float(r) for r in args.rhos.split(",")]
    seeds = list(range(args.seeds))
    rows: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as folder, open_bench(builtin_bench_path()) as bench:
        runs = Runs(args.log or Path(folder) / "runs.jsonl", args.budget_min * 60)
        twin, record, _ = bench_twin(bench, Store(Path(folder)))
        log(f"calibration {record.id} ready after {time.perf_counter() - runs.started:.0f} s")
        chip = bench.shared[SIMULATED_CHIP]
        calibrated = PhysicalLayer.from_system(bench.system, twin.layer)
        uninformed = PhysicalLayer.from_system(bench.system, nominal(twin).layer)
        for seed in seeds:
            dataset = load_dataset("digits", seed=seed).with_validation(0.15, seed)

            def run(name: str, options: dict[str, Any], physical: PhysicalLayer = calibrated) -> dict[str, Any] | None:
                return runs.get(seed, name, options, physical, dataset, chip, args.epochs)  # noqa: B023

            def keep(row: str, found: dict[str, Any] | None, why: str = "") -> None:
                if found is not None:
                    rows.setdefault(row, []).append(found)
                    if why:
                        chosen.setdefault(row, []).append(why)

            sat = best([run(f"sat ρ={rho:g}", {"method": "sat", "rho": rho}) for rho in rhos])
            keep("sat", sat, f"ρ = {sat['options']['rho']:g}" if sat else "")
            for method in PLAIN:
                keep(method, run(method, {"method": method}))
            if sat is None:
                continue
            rho = sat["options"]["rho"]
            for method in SAT[1:]:
                keep(method, run(f"{method} ρ={rho:g}", {"method": method, "rho": rho}), f"ρ = {rho:g} (sat's)")
            for row, (field, grid, fixed) in VARIANTS.items():
                found = best(
                    [
                        run(f"{row} {field}={v:g} ρ={rho:g}", {"method": "sat", "rho": rho, field: v, **fixed})
                        for v in grid
                    ]
                )
                keep(row, found, f"{field} = {found['options'][field]:g}" if found else "")
            for method in OFFSET_METHODS:
                keep(f"{method} (uninformed twin)", run(f"{method} uninformed", {"method": method}, uninformed))
        total = time.perf_counter() - runs.started
        calibration = record.id
    publish("bench_methods", table(args, rows, chosen, total, calibration), args)


def per_seed(records: list[dict[str, Any]], column: int) -> str:
    """One drift column's test accuracy (%) of each seed, comma-separated."""
    return ", ".join(f"{100 * r['test'][column]:.1f}" for r in records)


def table(
    args: argparse.Namespace,
    rows: dict[str, list[dict[str, Any]]],
    chosen: dict[str, list[str]],
    total_s: float,
    calibration: str,
) -> str:
    drift_rows = [r for r in rows if "uninformed" not in r]
    offset_rows = [r for r in rows if "uninformed" in r]
    n_test = next(iter(rows.values()))[0]["n_test"] if rows else 0
    command = "python benchmarks/bench_methods.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    load = os.getloadavg()
    lines = [
        f"## Every training method on the default simulated bench (`bench_methods.py`, {date.today()}, "
        f"nproc {os.cpu_count()})",
        "",
        f"`{command}` — {total_s / 60:.1f} min of this invocation (runs already in the log not counted), calibration "
        f"{calibration}, load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        f"Digits, 64-16-10 (both layers photonic), {args.epochs} epochs, every other setting the `TrainConfig` "
        "default (Adam lr 0.02, cosine decay, batch 32, adaptive SAT with θ_ref at resonance, NAT noise fitted on the "
        "bench with 0.5 K of drift). Device test accuracy (%, mean ± std over the seeds in the column n, full test "
        f"split of {n_test} images; **chance 10 %**) with the simulated chip's temperature changed after training. "
        f"Hyperparameters chosen per seed on the validation split (device accuracy, mean over "
        f"{', '.join(f'{d:+g} K' for d in SELECT_K)}); SAT's ρ from {args.rhos}:",
        "",
        "| method | n | validation | " + " | ".join(f"{d:+g} K" for d in DRIFTS_K) + " | chosen |",
        "|---|---:|---:|" + "---:|" * len(DRIFTS_K) + "---|",
    ]
    for name in drift_rows:
        found = rows[name]
        columns = [mean_std([r["test"][i] for r in found]) for i in range(len(DRIFTS_K))]
        why = "; ".join(chosen.get(name, [])) or "—"
        lines.append(
            f"| {name} | {len(found)} | {mean_std([score(r) for r in found])} | " + " | ".join(columns) + f" | {why} |"
        )
    lines += [
        "",
        "SSAM-F, SSAM-D and GSAM are `sat` (in silico, twin ascent) with the option in the last column at the seed's "
        "ρ: compare them with the `sat` row.",
        "",
        "Per seed at −1 K: " + "; ".join(f"{n} {per_seed(rows[n], DRIFTS_K.index(-1.0))}" for n in drift_rows),
    ]
    if offset_rows:
        lines += [
            "",
            "Chip with fabrication offsets (σ_fab = 0.08 nm), twin without them; device test accuracy at 0 K (%):",
            "",
            "| method | n | per seed | mean ± std |",
            "|---|---:|---|---:|",
        ]
        for name in offset_rows:
            found = rows[name]
            lines.append(
                f"| {name} | {len(found)} | {per_seed(found, 0)} | {mean_std([r['test'][0] for r in found])} |"
            )
    lines += [
        "",
        "| run | device layer-forwards / step | bench time / run (s) | wall / run (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, found in rows.items():
        forwards, bench_s, wall = (
            statistics.mean(r[k] for r in found) for k in ("forwards_per_step", "bench_s", "wall_s")
        )
        lines.append(f"| {name} | {forwards:g} | {bench_s:.0f} | {wall:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
