"""Training methods on the simulated MZI mesh ("device A", σ_ph = σ_bs = 0.15) and transfer to fresh devices.

Usage: ``python benchmarks/bench_mzi.py [--workers 2] [--folder runs/mzi] [--no-write]``

Runs the sweep benchmarks/sweeps/mzi.yaml with the sweep engine (every method × twin × seed a cell; cells
already stored under ``--folder`` are skipped, so an interrupted run resumes) and tables its dataset.
The SAT paper's MZI experiment at the scale of the digits data: a trained digital encoder (64 pixels →
10 amplitudes), one 10-mode Clements mesh (45 MZIs, 90 heaters) trained in phase, a digital scale/bias
on the 10 output intensities. With the *design* twin (50:50 couplers, no phase errors, no calibration),
as in the paper, offline BP (``bp-control``), NAT and in-silico SAT never see device A; PAT, DAT and
PAT+SAT run their forwards on it. With the *calibrated* twin every method trains on device A's fitted
mesh. Every model is tested on device A, on fresh devices (whole simulated benches) and along the
paper's transfer diagonal on fresh modelled meshes; λmax/λmin are the Hessian's algebraic extreme
eigenvalues of the test loss in phase space (rad⁻²) on the design model (a model tuned on device A need
not sit at a minimum of the design model, so λmin can be negative). Rewrites its section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
from results import add_write_option, mean_std, publish

from labsat.sweep.dataset import sweep_dataset
from labsat.sweep.engines import run_sweep
from labsat.sweep.spec import load_spec

SPEC = Path(__file__).resolve().parent / "sweeps" / "mzi.yaml"
METHODS = {
    "bp-control": "offline BP",
    "nat": "NAT",
    "pat": "PAT",
    "dat": "DAT",
    "sat": "SAT (in silico)",
    "pat+sat": "PAT+SAT",
}
"""The sweep's methods in table order, with the row labels of the paper."""


def _over_seeds(variable: xr.DataArray, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` over the seeds (and any further dimension) of one method × twin, NaN cells left out."""
    values = variable.values[np.isfinite(variable.values)]
    return mean_std(values.tolist(), scale, digits) if values.size else "—"


def _row(data: xr.Dataset, method: str, twin: str) -> str:
    """One method × twin: device A, fresh devices, their ratio, λmax, λmin, forwards, mean cell wall."""
    cell = data.sel({"method": method, "twin": twin})
    device_a = float(cell["accuracy"].mean())
    fresh = float(cell["fresh_devices"].mean())
    return (
        f"| {METHODS[method]} | {twin} | {_over_seeds(cell['accuracy'])} | {_over_seeds(cell['fresh_devices'])} | "
        f"{100 * fresh / max(device_a, 1e-9):.0f} % | {_over_seeds(cell['lambda_max'], 1.0, 2)} | "
        f"{_over_seeds(cell['lambda_min'], 1.0, 2)} | {float(cell['forwards'].mean()):.0f} | "
        f"{float(cell['wall'].mean()):.1f} |"
    )


def _curve_row(data: xr.Dataset, name: str, method: str, twin: str) -> str:
    """One method × twin along a measure's own axis: the mean over seeds and chips, per cent."""
    curve = data[name].sel({"method": method, "twin": twin}).mean(dim="seed")
    return f"| {METHODS[method]} | {twin} | " + " | ".join(f"{100 * float(v):.1f}" for v in curve.values) + " |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2, help="cells trained at once, one process each")
    parser.add_argument("--folder", type=Path, default=Path("runs") / "mzi", help="where the cells are stored")
    add_write_option(parser)
    args = parser.parse_args()
    spec = load_spec(SPEC)
    started = time.perf_counter()
    counts = run_sweep(spec, args.folder, workers=args.workers)
    wall = time.perf_counter() - started
    data = sweep_dataset(spec, args.folder)
    twins = [str(t) for t in data["twin"].values]
    sigmas = [float(s) for s in data["mesh_transfer_sigma"].values]
    couplers = [float(s) for s in data["coupler_sigma_bs"].values]
    pairs = [(method, twin) for twin in twins for method in METHODS]
    seeds = len(data["seed"])
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "## MZI mesh, device A (σ_ph = σ_bs = 0.15): methods, twins and transfer",
        "",
        f"`{shlex.join(['python', 'benchmarks/bench_mzi.py', *sys.argv[1:]])}` — {stamp}, nproc {os.cpu_count()}, "
        f"CPU; sweep `benchmarks/sweeps/mzi.yaml` ({counts['ok']} cells ran, {counts['skipped']} stored, "
        f"{counts['failed']} failed, {data.attrs['failed_cells']} failed in the dataset), wall {wall:.0f} s. "
        "Digits → trained encoder (64 → 10 amplitudes) → one 10-mode Clements mesh (90 heaters) trained in phase "
        f"→ scale/bias; accuracy on the full 450-image test split, mean ± std over {seeds} seeds; fresh devices = "
        f"{spec.fresh_device_count} whole simulated benches per seed at device A's σ (bench seeds + 1000 k), run "
        "through the guard with the design heater model; λmax, λmin = the design model's algebraic extreme Hessian "
        "eigenvalues of the test loss, rad⁻²; device forwards per training run; cell = mean wall of one cell "
        "(training, calibration where the twin is calibrated and not yet cached in the worker, every measure).",
        "",
        "| method | twin | device A (%) | fresh devices (%) | fresh / device A | λmax | λmin | device forwards "
        "| cell (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *(_row(data, method, twin) for method, twin in pairs),
        "",
        "Transfer without retraining (the SAT paper's Fig. 4d diagonal): accuracy (%) on fresh meshes with "
        f"σ_ph = σ_bs = σ, modelled physics (no readout errors or noise), mean over {spec.transfer_chips} chips "
        "per σ and the seeds (measure `mesh_transfer`). At σ = 0 a fresh mesh still differs from the design by "
        "its P_π and heater-resistance spreads.",
        "",
        "| method | twin | " + " | ".join(f"σ = {s:g}" for s in sigmas) + " |",
        "|---|---|" + "---:|" * len(sigmas),
        *(_curve_row(data, "mesh_transfer", method, twin) for method, twin in pairs),
        "",
        "Larger coupler errors (measure `coupler_errors`): accuracy (%) on one fresh device with σ_ph = 0.15 and "
        "σ_bs as given, mean over the seeds (the reference code gave NaN past σ_bs = 0.25).",
        "",
        "| method | twin | " + " | ".join(f"σ_bs = {s:g}" for s in couplers) + " |",
        "|---|---|" + "---:|" * len(couplers),
        *(_curve_row(data, "coupler_errors", method, twin) for method, twin in pairs),
    ])  # fmt: skip
    publish("bench_mzi", body, args)


if __name__ == "__main__":
    main()
