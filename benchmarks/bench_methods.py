"""Every training method on the default simulated bench: drift robustness and fabrication offsets.

Usage: ``python benchmarks/bench_methods.py [--workers 2] [--folder runs/methods] [--seeds N] [--no-write]``

Runs the five sweeps of benchmarks/sweeps/methods/ with the sweep engine (cells already stored under
``--folder`` are skipped, so an interrupted run resumes; ``--seeds`` runs the first N seeds of each) and
tables their datasets:

1. **Drift.** Digits (full 450-image test split), one 64-16-10 network per method and seed: ``bp`` (trained on
   ideal weights, deployed through the calibrated twin), ``bp-control``, ``nat``, ``pat``, ``dat`` (plain.yaml);
   ``sat``, ``nat+sat``, ``pat+sat``, ``dat+sat`` at every ρ (sat.yaml); and the SAM variants of in-silico
   ``sat``: SSAM-F (Fisher mask), SSAM-D (dynamic mask) at each sparsity and ρ (ssam.yaml), GSAM at each α
   and ρ (gsam.yaml). After training the chip's temperature is changed and every model is tested *on the
   device*.
2. **Fabrication offsets** (offsets.yaml). The same chip (σ_fab = 0.08 nm) with a twin that does not know its
   fabrication offsets (every ring's rest resonance at the mean, twin ``uninformed``): in-silico BP deployed
   through that twin against PAT, whose forward pass is the chip itself.

**Hyperparameters come from the validation split** (the 15 % of the training split every run holds out,
seeded and stratified, never trained on); the test split is read only for the final numbers. Per row and
seed, the candidate (ρ; SSAM's sparsity and ρ; GSAM's α and ρ) whose model scores best on the validation
split on the device, averaged over 0 K and −1 K (the drift the bench is about), is the row's model: a
grid cell, no retraining.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import xarray as xr
from results import add_write_option, mean_std, publish

from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.engines import run_sweep
from labsat.sweep.spec import SweepSpec, load_spec

SWEEPS = Path(__file__).resolve().parent / "sweeps" / "methods"
PARTS = ("plain", "sat", "ssam", "gsam", "offsets")
SELECT_K = (0.0, -1.0)
"""Drifts whose mean device validation accuracy chooses the hyperparameters."""


@dataclass(frozen=True)
class Row:
    """One table row: the cells of sweep ``part`` at ``selection``; per seed the best of the ``choices`` axes."""

    label: str
    part: str
    selection: dict[str, Any]
    choices: tuple[str, ...] = ()


ROWS = (
    *(Row(method, "plain", {"method": method}) for method in ("bp", "bp-control", "nat", "pat", "dat")),
    *(Row(method, "sat", {"method": method}, ("rho",)) for method in ("sat", "nat+sat", "pat+sat", "dat+sat")),
    Row("SSAM-F", "ssam", {"mask": "fisher"}, ("sparsity", "rho")),
    Row("SSAM-D", "ssam", {"mask": "dynamic"}, ("sparsity", "rho")),
    Row("GSAM", "gsam", {}, ("gsam_alpha", "rho")),
    *(Row(f"{method} (uninformed twin)", "offsets", {"method": method}) for method in ("bp", "bp-control", "pat")),
)


@dataclass(frozen=True)
class Picked:
    """The model a row keeps for one seed: its candidate, validation score and test accuracy along drift_k."""

    seed: int
    candidate: dict[str, Any]
    validation: float
    test: list[float]


def pick(data: xr.Dataset, row: Row) -> list[Picked]:
    """Per seed, the candidate of ``row`` that scores best on the validation split (seeds with no finished cell
    are left out)."""
    picked = []
    for seed in data["seed"].values:
        cells = data.sel({**row.selection, "seed": seed})
        candidates = [
            dict(zip(row.choices, values, strict=True))
            for values in itertools.product(*(cells[c].values.tolist() for c in row.choices))
        ]

        def score(candidate: dict[str, Any], cells: xr.Dataset = cells) -> float:
            return float(cells["validation_drift"].sel(candidate).sel(drift_k=list(SELECT_K)).mean())

        scored = [(value, c) for c in candidates if math.isfinite(value := score(c))]
        if scored:
            validation, best = max(scored, key=lambda pair: pair[0])
            test = [float(v) for v in cells["drift"].sel(best).values]
            picked.append(Picked(int(seed), best, validation, test))
    return picked


def _chosen(row: Row, picked: list[Picked]) -> str:
    """What was chosen per seed, e.g. ``ρ = 0.5, 1, 0.5``."""
    if not row.choices:
        return "—"
    names = {"rho": "ρ", "gsam_alpha": "α", "sparsity": "sparsity"}
    return "; ".join(f"{names[c]} = " + ", ".join(f"{p.candidate[c]:g}" for p in picked) for c in row.choices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="cells trained at once, one process each")
    parser.add_argument("--folder", type=Path, default=Path("runs") / "methods", help="where the cells are stored")
    parser.add_argument("--seeds", type=int, default=None, help="run the first N seeds of each sweep only")
    add_write_option(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    data: dict[str, xr.Dataset] = {}
    counts: dict[str, dict[str, int]] = {}
    for part in PARTS:
        spec = load_spec(SWEEPS / f"{part}.yaml")
        if args.seeds is not None:
            spec = SweepSpec.model_validate({**spec.settings(), "axes": {**spec.axes, "seed": list(range(args.seeds))}})
        counts[part] = run_sweep(spec, args.folder / part, workers=args.workers)
        data[part] = sweep_dataset(spec, args.folder / part)
    publish("bench_methods", table(args, data, counts, time.perf_counter() - started), args)


def table(args: argparse.Namespace, data: dict[str, xr.Dataset], counts: dict[str, dict[str, int]], wall: float) -> str:
    drifts = [float(d) for d in data["plain"]["drift_k"].values]
    picked = {row.label: pick(data[row.part], row) for row in ROWS}
    command = shlex.join(["python", "benchmarks/bench_methods.py", *sys.argv[1:]])
    ran = sum(c["ok"] for c in counts.values())
    stored = sum(c["skipped"] for c in counts.values())
    failed = sum(c["failed"] for c in counts.values())
    load = os.getloadavg()
    lines = [
        f"## Every training method on the default simulated bench (`bench_methods.py`, {date.today()}, "
        f"nproc {os.cpu_count()})",
        "",
        f"`{command}` — the sweeps of benchmarks/sweeps/methods/ ({ran} cells ran, {stored} stored, {failed} "
        f"failed), wall {wall / 60:.1f} min, load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        "Digits, 64-16-10 (both layers photonic), 20 epochs, every other setting the `TrainConfig` default (Adam "
        "lr 0.02, cosine decay, batch 32, adaptive SAT with θ_ref at resonance, NAT noise fitted on the bench with "
        "0.5 K of drift). Device test accuracy (%, mean ± std over the seeds in the column n, full test split of "
        "450 images; **chance 10 %**) with the simulated chip's temperature changed after training. "
        "Hyperparameters chosen per row and seed on the validation split (device accuracy, mean over "
        f"{', '.join(f'{d:+g} K' for d in SELECT_K)}):",
        "",
        "| method | n | validation | " + " | ".join(f"{d:+g} K" for d in drifts) + " | chosen |",
        "|---|---:|---:|" + "---:|" * len(drifts) + "---|",
    ]
    drift_rows = [row for row in ROWS if row.part != "offsets"]
    for row in drift_rows:
        found = picked[row.label]
        if not found:
            continue
        columns = [mean_std([p.test[i] for p in found]) for i in range(len(drifts))]
        lines.append(
            f"| {row.label} | {len(found)} | {mean_std([p.validation for p in found])} | "
            + " | ".join(columns)
            + f" | {_chosen(row, found)} |"
        )
    at = drifts.index(-1.0)
    lines += [
        "",
        "SSAM-F, SSAM-D and GSAM are `sat` (in silico, twin ascent) with their own option: compare them with the "
        "`sat` row.",
        "",
        "Per seed at −1 K: "
        + "; ".join(
            f"{row.label} " + ", ".join(f"{100 * p.test[at]:.1f}" for p in picked[row.label])
            for row in drift_rows
            if picked[row.label]
        ),
        "",
        "Chip with fabrication offsets (σ_fab = 0.08 nm), twin without them; device test accuracy at 0 K (%):",
        "",
        "| method | n | per seed | mean ± std |",
        "|---|---:|---|---:|",
    ]
    zero = drifts.index(0.0)
    for row in ROWS:
        found = picked[row.label]
        if row.part == "offsets" and found:
            per_seed = ", ".join(f"{100 * p.test[zero]:.1f}" for p in found)
            lines.append(f"| {row.label} | {len(found)} | {per_seed} | {mean_std([p.test[zero] for p in found])} |")
    lines += [
        "",
        "Costs per run, mean over every cell of the row (all candidates):",
        "",
        "| run | cells | device layer-forwards / run | bench time / run (s) | wall / run (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in ROWS:
        cells = data[row.part].sel(row.selection)
        finite = [float(w) for w in cells["wall"].values.ravel() if math.isfinite(w)]
        if not finite:
            continue
        forwards, bench_s = (float(cells[k].mean()) for k in ("forwards", "bench_time"))
        lines.append(
            f"| {row.label} | {len(finite)} | {forwards:.0f} | {bench_s:.0f} | {statistics.mean(finite):.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
