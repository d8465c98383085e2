"""Training methods on the simulated MZI mesh ("device A", σ_ph = σ_bs = 0.15) and transfer to fresh devices.

Usage: ``python benchmarks/bench_mzi.py [--seeds 5] [--epochs 40] [--devices 5] [--rho 0.5] [--workers 1]``

The SAT paper's MZI experiment at the scale of the digits data: a trained digital encoder (64 pixels →
10 amplitudes, :class:`~labsat.training.network.DigitalEncoder`), one 10-mode Clements mesh (45 MZIs,
90 heaters) trained in phase (:mod:`labsat.training.mzi`), a digital scale/bias on the 10 output
intensities. The twin is the *design* mesh (50:50 couplers, no phase errors: no calibration), so, as in
the paper, offline BP (``bp-control``), NAT and in-silico SAT never see device A; PAT, DAT and PAT+SAT
run their forwards on it (PAT+SAT measures both SAM passes on the device). Two more rows train on
device A's *calibrated* twin (:func:`~labsat.calibration.mzi.calibrate_mesh`, fitted once at the start).
Every model is tested on device A (full 450-image test split, through the guarded instruments), then
deployed without retraining on ``--devices`` fresh chips (bench seeds after device A's, same σ), and the
PAT+SAT models also on chips with coupler errors up to σ_bs = 0.5 (where the reference code gave NaN).
λ is the Hessian eigenvalue of largest magnitude of the test loss in phase space (rad⁻²) on the design
model; a negative one means the loss curves down most steeply there (a model tuned on device A need not
sit at a minimum of the design model).
``--workers`` trains that many runs at once in separate processes. Rewrites its section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from results import add_write_option, mean_std, publish

from labsat.bench import open_bench
from labsat.benchfile import BenchFile, load_bench_file
from labsat.calibration.mzi import MeshCalibration, calibrate_mesh
from labsat.datasets import Split, load_dataset
from labsat.evaluation.hessian import sharpness
from labsat.evaluation.photonic import ChipDraw, LayerModel, network_loss, transfer_model
from labsat.evaluation.sweeps import SweepSpec, run_sweep
from labsat.physics.mzi import MZIChipParams, mesh_layer, volts_for_phase
from labsat.simulators.mzi import MZISimConfig, chip_params
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy
from labsat.training.loop import train
from labsat.training.mzi import mesh_physical_layer
from labsat.training.network import PhotonicNet
from labsat.training.runners import device_runner

CONFIG = Path(__file__).resolve().parents[1] / "config" / "sim-mzi.yaml"
RUNS = {
    "offline BP": ("bp-control", "design"),
    "NAT": ("nat", "design"),
    "PAT": ("pat", "design"),
    "DAT": ("dat", "design"),
    "SAT (in silico)": ("sat", "design"),
    "PAT+SAT": ("pat+sat", "design"),
    "BP, calibrated twin": ("bp-control", "calibrated"),
    "PAT+SAT, calibrated twin": ("pat+sat", "calibrated"),
}
"""Row label → (method, twin): the design mesh, or device A's calibrated mesh (:mod:`labsat.calibration.mzi`)."""
TRANSFER = SweepSpec("transfer", "σ_ph = σ_bs of a fresh mesh", "", (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), min_seeds=5)
"""The SAT paper's transfer grid (its diagonal): every model on 5 fresh chips per σ, modelled (no readout errors)."""
COUPLER_ERRORS = (0.25, 0.3, 0.4, 0.5)
"""σ_bs of the extra chips the PAT+SAT models meet (σ_ph = 0.15): past 0.25 the reference code gave NaN."""


@dataclass(frozen=True)
class RunOutcome:
    """One trained model's figures: device A, the fresh chips, the large-coupler-error chips, λ, cost."""

    label: str
    seed: int
    device_a: float
    fresh: list[float]
    coupler: list[float]
    lambda_max: float
    forwards: int
    transfer: list[float]


def on_chip(spec: BenchFile, net: PhotonicNet, test: Split, seed: int, sigma_bs: float | None = None) -> float:
    """Accuracy of ``net`` on the chip of bench seed ``seed`` (coupler error σ_bs if given), design twin."""
    update: dict[str, object] = {"seed": seed}
    if sigma_bs is not None:
        update["simulator"] = {**spec.simulator, "sigma_bs": sigma_bs}
    with open_bench(spec.model_copy(update=update), torch_device=torch.device("cpu")) as bench:
        physical = mesh_physical_layer(bench.system, bench.system.nominal_twin())
        return accuracy(net, test, device_runner(physical))


def fresh_mesh(spec: BenchFile) -> ChipDraw:
    """``(σ, seed) -> layer model`` of a fresh mesh with σ_ph = σ_bs = σ, driven through the design's heater model."""
    config = MZISimConfig.model_validate(spec.simulator)
    design = MZIChipParams.nominal(spec.system.modes, spec.system.p_pi_mw, spec.system.heater_resistance_ohm)

    def draw(sigma: float, seed: int) -> LayerModel:
        chip = chip_params(config.model_copy(update={"sigma_ph": sigma, "sigma_bs": sigma}), design.modes, seed)
        chip = chip.to(dtype=torch.float32)
        return lambda x, shifts, _dt: mesh_layer(chip, x, volts_for_phase(design, shifts))

    return draw


def run_one(label: str, seed: int, args: argparse.Namespace, calibration: MeshCalibration) -> RunOutcome:
    """Train row ``label`` with ``seed`` on device A, then test it there and on the other chips."""
    torch.set_num_threads(1)
    spec = load_bench_file(CONFIG)
    dataset = load_dataset("digits")
    method, twin_kind = RUNS[label]
    with open_bench(spec, torch_device=torch.device("cpu")) as bench:
        system = bench.system
        twin = calibration.apply(system) if twin_kind == "calibrated" else system.nominal_twin()
        physical = mesh_physical_layer(system, twin)
        config = TrainConfig(
            method=method, epochs=args.epochs, batch_size=64, hidden=(), encoder=spec.system.modes, lr=0.05,
            digital_lr=0.02, rho=args.rho, adaptive=False, seed=seed,
        )  # fmt: skip
        result = train(config, physical, dataset)
        net = result.net
        device_a = accuracy(net, dataset.test, device_runner(physical))
        design = mesh_physical_layer(system, system.nominal_twin()).twin_layer
        loss_fn, controls = network_loss(net, lambda x, theta, _dt: design(x, theta), dataset.test)
        lambda_max = sharpness(loss_fn, controls, probes=10, seed=seed).lambda_max
    fresh = [on_chip(spec, net, dataset.test, spec.seed + 1000 * k) for k in range(1, args.devices + 1)]
    sweep = run_sweep(TRANSFER, transfer_model(net, fresh_mesh(spec)), dataset.test.x, dataset.test.y, seeds=5)
    coupler = [on_chip(spec, net, dataset.test, spec.seed + 7, s) for s in COUPLER_ERRORS] if label == "PAT+SAT" else []
    transfer = sweep.accuracy.mean(dim=1).tolist()
    return RunOutcome(label, seed, device_a, fresh, coupler, lambda_max, result.cost.forwards, transfer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=1, help="Processes training runs in parallel (1 thread each).")
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    with open_bench(CONFIG, torch_device=torch.device("cpu")) as bench:
        calibration = calibrate_mesh(bench.system)
    jobs = [(label, seed) for seed in range(args.seeds) for label in RUNS]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, label, seed, args, calibration) for label, seed in jobs]
        outcomes = []
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            print(outcome.label, outcome.seed, outcome.device_a, statistics.mean(outcome.fresh), flush=True)
    device_a = {label: [o.device_a for o in outcomes if o.label == label] for label in RUNS}
    fresh = {label: [a for o in outcomes if o.label == label for a in o.fresh] for label in RUNS}
    lambda_max = {label: [o.lambda_max for o in outcomes if o.label == label] for label in RUNS}
    queries = {label: [o.forwards for o in outcomes if o.label == label] for label in RUNS}
    coupler = {s: [o.coupler[i] for o in outcomes if o.label == "PAT+SAT"] for i, s in enumerate(COUPLER_ERRORS)}
    transfer_rows = [
        f"| {label} | "
        + " | ".join(
            f"{100 * statistics.mean(o.transfer[i] for o in outcomes if o.label == label):.1f}"
            for i in range(len(TRANSFER.values))
        )
        + " |"
        for label in RUNS
    ]

    rows = [
        f"| {label} | {mean_std(device_a[label])} | {mean_std(fresh[label])} | "
        f"{100 * statistics.mean(fresh[label]) / max(statistics.mean(device_a[label]), 1e-9):.0f} % | "
        f"{mean_std(lambda_max[label], 1.0, 2)} | {statistics.mean(queries[label]):.0f} |"
        for label in RUNS
    ]
    coupler_cells = " | ".join(
        f"σ_bs = {s}: {mean_std(v)} (NaN: {'yes' if any(math.isnan(a) for a in v) else 'none'})"
        for s, v in coupler.items()
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "## MZI mesh, device A (σ_ph = σ_bs = 0.15): methods and transfer",
        "",
        f"`python benchmarks/bench_mzi.py --seeds {args.seeds} --epochs {args.epochs} --devices {args.devices} "
        f"--rho {args.rho} --workers {args.workers}` — {stamp}, nproc {os.cpu_count()}, CPU, "
        f"wall {time.perf_counter() - started:.0f} s. "
        "Digits → trained encoder (64 → 10 amplitudes) → one 10-mode Clements mesh (90 heaters) trained in phase "
        "→ scale/bias; accuracy on the full 450-image test split, mean ± std over "
        f"{args.seeds} seeds; fresh = {args.devices} fresh chips per seed at σ = 0.15, run with the design twin; "
        "λ = the design model's Hessian eigenvalue of largest magnitude, rad⁻²; device forwards per training run. "
        "Device A's calibration "
        f"({calibration.cost.programs} settings): held-out RMS {calibration.holdout_rms:.4f} against "
        f"{calibration.design_holdout_rms:.4f} for the design twin (units of one input's full power).",
        "",
        "| method | device A (%) | fresh devices (%) | fresh / device A | λ | device forwards |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"PAT+SAT models on chips with larger coupler errors (σ_ph = 0.15): {coupler_cells}.",
        "",
        "Transfer without retraining (the SAT paper's Fig. 4d diagonal): accuracy (%) on fresh meshes with "
        "σ_ph = σ_bs = σ, modelled physics (no readout errors or noise), mean over 5 chips per σ and the seeds "
        "(`labsat.evaluation` transfer sweep):",
        "",
        "| method | " + " | ".join(f"σ = {v}" for v in TRANSFER.values) + " |",
        "|---|" + "---:|" * len(TRANSFER.values),
        *transfer_rows,
    ])  # fmt: skip
    publish("bench_mzi", body, args)


if __name__ == "__main__":
    main()
