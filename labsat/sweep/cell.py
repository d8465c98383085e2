"""One cell: train on a fresh simulated bench and take the spec's measures.

Every cell opens its own bench, so no chip state (drift, instrument noise streams) passes from one cell to
the next: a cell's numbers depend only on its settings and seeds, whichever worker runs it. The bench's
calibration is deterministic and is kept per process in a private store, so a worker calibrates once.

``accuracy``, ``drift`` and the costs are the device's. The chip-model measures (read and control noise, transfer to
fresh chips, sharpness) are taken where :mod:`labsat.evaluation.chips` takes them for ``labsat evaluate``:
on the simulator's ground-truth chip read out through the run's calibration, with the fresh chips drawn
from the bench's design, so a sweep's λmax or transfer curve means what an evaluation report's does.
On an MZI mesh they are the mesh's (:mod:`labsat.evaluation.mesh_chips`): fresh whole devices, fresh
modelled meshes along the transfer diagonal and larger coupler errors, the curvature on the design model;
the ``twin`` axis trains either through the calibrated mesh or through the design mesh, uncalibrated.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from labsat.bench import DEFAULT_BENCH, Bench, open_bench
from labsat.benchfile import BenchFile
from labsat.calibration.stored import StoredCalibration
from labsat.datasets import Split, load_dataset
from labsat.evaluation.chips import BenchChips, bench_chips
from labsat.evaluation.hessian import HessianOperator, extreme_eigenvalues, hutchinson_trace
from labsat.evaluation.mesh_chips import (
    COUPLER_CHIP_SEED_OFFSET,
    MESH_TRANSFER,
    accuracy_on_device,
    design_layer,
    fresh_device_seeds,
    fresh_mesh,
)
from labsat.evaluation.photonic import (
    LayerModel,
    drift_model,
    network_loss,
    noise_model,
    population_transfer_sweep,
    transfer_model,
)
from labsat.evaluation.sweeps import NOISE, Classifier, PerturbedModel, SweepResult, SweepSpec, run_sweep
from labsat.evaluation.sweeps import accuracy as classifier_accuracy
from labsat.store import Store
from labsat.sweep.spec import CURVATURE_MEASURES, SYSTEM_MEASURES, sweep_bench
from labsat.systems.kind import system_of
from labsat.systems.mrr import MRRBankSystem
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy, accuracy_under_drift
from labsat.training.loop import train
from labsat.training.mzi import mesh_physical_layer
from labsat.training.network import PhotonicNet
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner
from labsat.training.session import bench_layer, bench_network, bench_twin
from labsat.truth import SIMULATED_CHIP

_PROCESS_STORE: Store | None = None


def _store() -> Store:
    global _PROCESS_STORE
    if _PROCESS_STORE is None:
        _PROCESS_STORE = Store(Path(tempfile.mkdtemp(prefix="labsat-sweep-")))
    return _PROCESS_STORE


def run_cell(params: dict[str, Any]) -> dict[str, Any]:
    """The cell's measures: scalars, and one value per list entry for ``drift``, ``noise`` and ``transfer``."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    # Opened from its parsed spec, not its file: the simulated bench is private to the cell, so parallel
    # cells do not contend for the file's ownership lock (its addresses are simulator-private).
    bench_file = sweep_bench(params.get("bench", DEFAULT_BENCH))
    with open_bench(bench_file) as bench:
        return measure_cell(bench, _store(), params, started)


def run_cell_on(bench: Bench, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    """The cell trained on ``bench`` itself, through its guard, with the twin of ``store``'s newest calibration
    of it: a sweep on the service's own bench (real hardware), where only :data:`DEVICE_MEASURES` are taken."""
    return measure_cell(bench, store, params, time.perf_counter())


def measure_cell(bench: Bench, store: Store, params: dict[str, Any], started: float) -> dict[str, Any]:
    """Train the cell's network on ``bench`` and take its measures; ``wall`` counts from ``started``."""
    config = TrainConfig(**{k: v for k, v in params.items() if k in TrainConfig.model_fields})
    dataset = load_dataset(params["dataset"], seed=config.seed)
    torch.manual_seed(config.seed)
    measures = params["measure"]
    bench_file = bench.spec
    config = bench_network(bench, config, dataset)
    twin = params.get("twin", "calibrated")
    record: StoredCalibration | None
    if twin == "design":
        mesh = system_of(bench, MZIMeshSystem)
        layer, record = mesh_physical_layer(mesh, mesh.nominal_twin(), dataset.n_classes), None
    elif twin == "uninformed":
        bank_twin, record, _ = bench_twin(bench, store)
        bank = system_of(bench, MRRBankSystem)
        layer = PhysicalLayer.from_system(bank, bank_twin.without_fabrication_offsets().layer)
    else:
        layer, record, _ = bench_layer(bench, store, dataset.n_classes)
    result = train(config, layer, dataset)
    values: dict[str, Any] = {}
    if "accuracy" in measures:
        values["accuracy"] = accuracy(result.net, dataset.test, device_runner(layer))
    held_out = dataset.with_validation(config.validation_fraction, config.seed).validation
    for name, split in (("drift", dataset.test), ("validation_drift", held_out)):
        if name in measures:
            assert split is not None  # the spec refuses validation_drift without a validation split
            values[name] = accuracy_under_drift(
                result.net, split, layer, bench.shared[SIMULATED_CHIP], params["drift_k"]
            )
    kind = bench_file.system.type
    if SYSTEM_MEASURES.get(kind, frozenset()).intersection(measures):
        seeded = {**params, "seed": config.seed}
        if kind == "mzi_mesh":
            mesh = system_of(bench, MZIMeshSystem)
            values.update(mesh_measures(result.net, bench_file, mesh, dataset.test, seeded))
        else:  # a bank, which trains with its calibrated twin (the spec refuses its design)
            assert record is not None
            chips = bench_chips(bench, store, record.id)
            values.update(chip_measures(result.net, chips, dataset.test, seeded))
    cost = asdict(result.cost)
    if "forwards" in measures:
        values["forwards"] = float(cost["forwards"])
    if "bench_time" in measures:
        values["bench_time"] = float(cost["bench_time_s"])
    if "wall" in measures:
        values["wall"] = time.perf_counter() - started
    return values


def chip_measures(net: PhotonicNet, chips: BenchChips, test: Split, params: dict[str, Any]) -> dict[str, Any]:
    """The chip-model measures ``params`` asks for (see the module doc), seeded by the cell's seed."""
    measures, seed = params["measure"], int(params["seed"])
    values: dict[str, Any] = {}
    if "chip_accuracy" in measures:
        clean = drift_model(net, chips.layer)(0.0, torch.Generator(device=test.x.device))
        values["chip_accuracy"] = classifier_accuracy(clean, test.x, test.y)
    if "noise" in measures:
        noisy = noise_model(net, chips.layer)
        values.update(_curve("noise", NOISE, noisy, test, params["read_noise"], params["read_noise_draws"], seed))
    if "control_noise" in measures:
        jittered = control_noise_model(net, chips.layer)
        points, draws = params["control_noise_v"], params["read_noise_draws"]
        values.update(_curve("control_noise", CONTROL_NOISE, jittered, test, points, draws, seed))
    if "transfer" in measures:
        points, count = params["transfer_sigma_nm"], params["transfer_chips"]
        fresh = population_transfer_sweep(net, chips.population, test.x, test.y, seeds=count, seed=seed, values=points)
        values.update(_curve_values("transfer", fresh))
    values.update(curvature_measures(net, chips.layer, test, params))
    return values


def mesh_measures(
    net: PhotonicNet, bench_file: BenchFile, system: MZIMeshSystem, test: Split, params: dict[str, Any]
) -> dict[str, Any]:
    """The mesh measures ``params`` asks for: other devices and meshes of the design, and the design's curvature."""
    measures, seed = params["measure"], int(params["seed"])
    values: dict[str, Any] = {}
    if "fresh_devices" in measures:
        seeds = fresh_device_seeds(bench_file, params["fresh_device_count"])
        fresh = torch.tensor([accuracy_on_device(bench_file, net, test, s) for s in seeds])
        values["fresh_devices"], values["fresh_devices_std"] = fresh.mean().item(), fresh.std().item()
    if "mesh_transfer" in measures:
        points, count = params["mesh_transfer_sigma"], params["transfer_chips"]
        meshes = transfer_model(net, fresh_mesh(bench_file))
        result = run_sweep(MESH_TRANSFER, meshes, test.x, test.y, seeds=count, seed=seed, values=points)
        values.update(_curve_values("mesh_transfer", result))
    if "coupler_errors" in measures:
        chip = bench_file.seed + COUPLER_CHIP_SEED_OFFSET
        sigmas = params["coupler_sigma_bs"]
        values["coupler_errors"] = [accuracy_on_device(bench_file, net, test, chip, s) for s in sigmas]
    values.update(curvature_measures(net, design_layer(system, net.sizes[-1]), test, params))
    return values


def curvature_measures(net: PhotonicNet, layer: LayerModel, test: Split, params: dict[str, Any]) -> dict[str, Any]:
    """The curvature measures ``params`` asks for, of the test loss on ``layer`` over the controls."""
    measures, seed = params["measure"], int(params["seed"])
    values: dict[str, Any] = {}
    if not CURVATURE_MEASURES.intersection(measures):
        return values
    loss_fn, theta = network_loss(net, layer, test.subset(params["hessian_samples"], seed))
    hvp = HessianOperator(loss_fn, theta)
    if {"lambda_max", "lambda_min"}.intersection(measures):
        extremes = extreme_eigenvalues(loss_fn, theta, max_steps=params["lanczos_steps"], seed=seed, hvp=hvp)
        for name in ("lambda_max", "lambda_min"):
            if name in measures:
                values[name] = getattr(extremes, name)
                values[f"{name}_error"] = getattr(extremes, f"{name}_error")
    if "trace" in measures:
        trace = hutchinson_trace(loss_fn, theta, probes=params["trace_probes"], seed=seed, hvp=hvp)
        values["trace"], values["trace_error"] = trace.value, trace.stderr
    return values


CONTROL_NOISE = SweepSpec("control_noise", "heater-control noise σ", "V", (0.0, 0.02, 0.05))
"""Gaussian jitter on every heater control, volts (the spec's ``control_noise_v`` list is what a sweep takes)."""


def control_noise_model(net: PhotonicNet, layer: LayerModel) -> PerturbedModel:
    """Gaussian noise of σ = ``value`` volts on every photonic control, drawn anew at each layer's forward.

    What scatters the controls between readings (a heater DAC's jitter), on the chip model only: the noisy
    controls are never written to a device, so they need not pass the guard.
    """

    def perturbed(sigma: float, generator: torch.Generator) -> Classifier:
        def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
            jitter = torch.randn(theta.shape, generator=generator, device=theta.device, dtype=theta.dtype)
            return layer(x, theta + sigma * jitter, 0.0)

        return lambda x: net(x, run)

    return perturbed


def _curve(
    name: str, sweep: SweepSpec, perturbed: PerturbedModel, test: Split, points: list[float], draws: int, seed: int
) -> dict[str, list[float]]:
    """``name``: the mean accuracy over ``draws`` seeded draws at each of ``points``; ``name_std``: their spread."""
    return _curve_values(name, run_sweep(sweep, perturbed, test.x, test.y, seeds=draws, seed=seed, values=points))


def _curve_values(name: str, result: SweepResult) -> dict[str, list[float]]:
    """A sweep as a cell stores it: ``name``, the mean over draws at each point; ``name_std``, their spread."""
    return {name: result.mean.tolist(), f"{name}_std": result.std.tolist()}
