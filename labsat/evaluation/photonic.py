"""A trained photonic network as the generic evaluation tools see it.

Sweeps want ``perturbed(value, generator) -> classifier``; sharpness and landscapes want a loss of one
flat control vector. This module builds both from a :class:`~labsat.training.network.PhotonicNet` and a
*layer model*: a differentiable ``(x, θ, ΔT) -> y`` of the chip the network runs on. On a simulated
bench that is the simulator's own ground truth read out through the calibrated readout (the chip as it
really is); on a real bench it is the calibrated twin (the best model of the chip there is). Either way
it is a :meth:`Twin.layer <labsat.twin.Twin.layer>`, so this module never touches a device.

Sharpness is taken over the photonic controls only (the heater voltages, every layer jointly), with the
digital scale/bias held fixed: those are the parameters SAT perturbs and drift moves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.datasets import Split
from labsat.errors import LabsatError
from labsat.evaluation.confusion import confusion
from labsat.evaluation.flat import FlatControls, LossFn
from labsat.evaluation.hessian import sharpness
from labsat.evaluation.landscape import loss_landscape
from labsat.evaluation.report import ModelEvaluation
from labsat.evaluation.sweeps import (
    SWEEPS,
    TRANSFER,
    Classifier,
    PerturbedModel,
    SweepResult,
    accuracy,
    run_sweep,
    sweep_grid,
)
from labsat.training.network import LayerRunner, PhotonicNet

LayerModel = Callable[[Tensor, Tensor, float], Tensor]
"""``(x (B, in), θ (out, in), ΔT in K) -> y (B, out)``: one photonic layer on a modelled chip."""

ChipDraw = Callable[[float, int], LayerModel]
"""``(fabrication spread σ, chip seed) -> layer model`` of a freshly drawn chip of the same design."""

ChipPopulation = Callable[[float, Sequence[int]], LayerModel]
"""``(σ, chip seeds) -> layer model`` of all those chips at once: ``(x, θ, ΔT) -> y (K, B, out)``, chip ``k``
being the chip :data:`ChipDraw` gives for ``seeds[k]``."""

CONFUSION_DRIFT_K = -1.0
"""Confusion matrices are taken at this drift: at ΔT = 0 every good model is diagonal and says nothing,
while at −1 K (the SAT work shows −1.3 K) a sharp model's errors pile onto a few classes."""


class EvaluationError(LabsatError):
    """An evaluation that cannot run as asked (a sweep the system has no knob for)."""


def photonic_controls(net: PhotonicNet) -> FlatControls:
    """The network's photonic controls (``theta.0``, ``theta.1``, …) packed into one vector."""
    photonic = {id(p) for p in net.photonic_parameters()}
    return FlatControls.pack({name: p for name, p in net.named_parameters() if id(p) in photonic})


def _runner(layer: LayerModel, delta_t_k: float = 0.0) -> LayerRunner:
    return lambda index, x, theta: layer(x, theta, delta_t_k)


def network_loss(net: PhotonicNet, layer: LayerModel, split: Split) -> tuple[LossFn, Tensor]:
    """Cross-entropy on ``split`` as a function of the flat photonic controls, and the trained point θ."""
    controls = photonic_controls(net)

    def loss_of(named: dict[str, Tensor]) -> Tensor:
        logits = torch.func.functional_call(net, named, (split.x, _runner(layer)))
        return F.cross_entropy(logits, split.y)

    return controls.loss(loss_of), controls.vector


def drift_model(net: PhotonicNet, layer: LayerModel) -> PerturbedModel:
    """The whole chip ``value`` kelvin warmer (every resonance shifted by ``drift·ΔT``); deterministic."""
    return lambda delta_t_k, _generator: lambda x: net(x, _runner(layer, delta_t_k))


def noise_model(net: PhotonicNet, layer: LayerModel) -> PerturbedModel:
    """Gaussian read noise on every photonic layer's output, σ = ``value`` × that output's RMS."""

    def perturbed(sigma: float, generator: torch.Generator) -> Classifier:
        def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
            y = layer(x, theta, 0.0)
            noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
            return y + sigma * y.square().mean().sqrt() * noise

        return lambda x: net(x, run)

    return perturbed


def transfer_model(net: PhotonicNet, draw: ChipDraw) -> PerturbedModel:
    """The same controls on a fresh chip with fabrication spread ``value``, one chip per generator seed."""

    def perturbed(sigma: float, generator: torch.Generator) -> Classifier:
        run = _runner(draw(sigma, _chip_seed(generator)))
        return lambda x: net(x, run)

    return perturbed


def _chip_seed(generator: torch.Generator) -> int:
    """The fabrication seed of the fresh chip a transfer point's generator stands for."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))


def population_transfer_sweep(
    net: PhotonicNet,
    population: ChipPopulation,
    x: Tensor,
    y: Tensor,
    *,
    seeds: int = TRANSFER.min_seeds,
    seed: int = 0,
    values: Sequence[float] | None = None,
) -> SweepResult:
    """The transfer sweep with each point's fresh chips as one population: one batched pass per point.

    The chips are those :func:`transfer_model` draws for the same seeds, so the table equals
    ``run_sweep(TRANSFER, transfer_model(net, draw), …)``; only the chip loop becomes a tensor dimension,
    which is what lets a Monte Carlo over many chips run at the cost of a few large matmuls (on CUDA when
    the chips live there).
    """
    points, seed_list = sweep_grid(TRANSFER, seeds, seed, values)
    chip_seeds = [_chip_seed(torch.Generator(device=x.device).manual_seed(s)) for s in seed_list]
    table = torch.empty(len(points), seeds, dtype=torch.float64)
    with torch.no_grad():
        for i, value in enumerate(points):
            logits = net(x, _runner(population(value, chip_seeds)))
            table[i] = (logits.argmax(-1) == y).double().mean(-1).cpu()
    return SweepResult(replace(TRANSFER, values=points), seed_list, table)


@dataclass(frozen=True)
class StoredNetwork:
    """A stored model as an evaluation takes it: its id, the network, what its trainer recorded, its test split."""

    model_id: str
    net: PhotonicNet
    metadata: dict[str, Any]
    test: Split

    @property
    def name(self) -> str:
        """How the report names it: its method and id."""
        return f"{self.metadata.get('method', 'model')} {self.model_id}"

    def calibration_on(self, bench_name: str) -> str | None:
        """The calibration it was trained with if ``bench_name`` is its own bench, else None (that bench's newest)."""
        return self.metadata.get("calibration") if self.metadata.get("bench") == bench_name else None


@dataclass(frozen=True)
class EvaluationSettings:
    """How much to measure; the defaults follow the SAT work's protocol at a cost a laptop affords.

    Sweeps always use the full test split. Sharpness and the landscape use ``hessian_samples`` test
    samples (seeded), as the SAT work does (one batch of 100): the loss is a mean, so λmax does not grow
    with the batch, and every HVP costs in proportion to it.
    """

    sweeps: tuple[str, ...] | None = None
    """The perturbation sweeps; None: the system's own default (:func:`evaluate_network`: drift)."""
    seeds: int = 3
    probes: int = 100
    hessian_samples: int = 100
    landscape_steps: int = 31
    landscape_radius: float = 1.0
    seed: int = 0


def evaluate_network(
    name: str,
    net: PhotonicNet,
    layer: LayerModel,
    test: Split,
    *,
    method: str = "",
    chips: ChipPopulation | None = None,
    settings: EvaluationSettings | None = None,
    metadata: dict[str, Any] | None = None,
) -> ModelEvaluation:
    """Everything the report shows for one network: accuracy, sharpness, landscape, sweeps, confusion.

    ``chips`` draws fresh chips for the ``transfer`` sweep (only a simulated design can be redrawn); each
    point's chips run as one population (:func:`population_transfer_sweep`).
    """
    settings = settings or EvaluationSettings()
    factories: dict[str, PerturbedModel] = {"drift": drift_model(net, layer), "noise": noise_model(net, layer)}
    requested = ("drift",) if settings.sweeps is None else settings.sweeps
    available = {*factories, *(("transfer",) if chips is not None else ())}
    missing = [sweep for sweep in requested if sweep not in available]
    if missing:
        raise EvaluationError("; ".join(_unsupported(sweep) for sweep in missing))
    loss_fn, theta = network_loss(net, layer, test.subset(settings.hessian_samples, settings.seed))
    clean = factories["drift"](0.0, torch.Generator(device=test.x.device))

    def measured(sweep: str) -> SweepResult:
        seeds = _seeds(sweep, settings.seeds)
        if sweep in factories:
            return run_sweep(SWEEPS[sweep], factories[sweep], test.x, test.y, seeds=seeds, seed=settings.seed)
        assert chips is not None  # checked above: transfer is only requested with chips to draw
        return population_transfer_sweep(net, chips, test.x, test.y, seeds=seeds, seed=settings.seed)

    sweeps = {sweep: measured(sweep) for sweep in requested}
    return ModelEvaluation(
        name=name,
        method=method,
        accuracy=accuracy(clean, test.x, test.y),
        sharpness=sharpness(loss_fn, theta, probes=settings.probes, seed=settings.seed),
        sweeps=sweeps,
        landscape=loss_landscape(
            loss_fn, theta, radius=settings.landscape_radius, steps=settings.landscape_steps, seed=settings.seed
        ),
        confusion=confusion(
            factories["drift"], test.x, test.y, value=CONFUSION_DRIFT_K, condition=f"ΔT = {CONFUSION_DRIFT_K:g} K"
        ),
        # How much the sharpness and landscape stand on: a reader compares λmax only at equal samples.
        metadata={
            **(metadata or {}),
            "hessian_samples": min(settings.hessian_samples, len(test)),
            "probes": settings.probes,
        },
    )


def _seeds(sweep: str, requested: int) -> int:
    """Seeds a sweep needs: drift on a chip model is deterministic, so one; transfer at least 5 chips."""
    if sweep == "drift":
        return 1
    return max(requested, SWEEPS[sweep].min_seeds)


def _unsupported(sweep: str) -> str:
    if sweep == "misalignment":
        return "misalignment needs a free-space system with masks to shift (d2nn); an MRR bank has none"
    if sweep == "transfer":
        return "transfer needs a simulated design to draw fresh chips from (the bench file's `simulator:` section)"
    return f"unknown sweep {sweep!r} (known: {', '.join(SWEEPS)})"
