"""Accuracy under perturbation: thermal drift, read noise, transfer to fresh chips, misalignment.

A sweep only needs a *perturbed-model factory*: ``perturbed(value, generator)`` returns a classifier
``x -> scores`` for the system with the perturbation set to ``value`` (a temperature change, a noise σ,
a fabrication spread, a rotation). Every random draw (a fresh chip, read noise) must come from
``generator``, which is what makes a (value, seed) point reproducible. The factory is called once per
point and the classifier then sees the whole test split in batches, so a chip drawn for a point is the
same chip for every batch. Any system (simulator, twin, bench) plugs in through that one callable.

Seed ``s`` gets the same generator seed at every value (common random numbers): chip ``s`` of a
transfer sweep is the same fabrication draw scaled to each σ, so the curve's shape is the model's, not
the lottery's. The spread reported is the sample standard deviation over seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

Classifier = Callable[[Tensor], Tensor]
"""Scores ``(B, K)`` (the arg-max is the prediction) or predicted labels ``(B,)`` for inputs ``(B, ...)``."""

PerturbedModel = Callable[[float, torch.Generator], Classifier]
"""``(value, generator) -> classifier`` for the system with one perturbation set to ``value``."""


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep varies, over which values, and how many seeds it needs at least."""

    name: str
    label: str
    unit: str
    values: tuple[float, ...]
    min_seeds: int = 1

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


DRIFT_RANGE_K = tuple(0.25 * i - 2.0 for i in range(17))
"""The drift every report sweeps by default, −2 K to +2 K in 0.25 K steps: declared once, so the terminal
tables, the JSON and the HTML report of one evaluation (``labsat evaluate``, ``labsat demo``) show the same
values. The SAT work's points (0, −0.25, −0.5, −1, −2 K) are all on it."""

DRIFT = SweepSpec("drift", "uniform temperature change ΔT", "K", DRIFT_RANGE_K)
NOISE = SweepSpec("noise", "read-noise σ", "fraction of the output's RMS", (0.0, 0.02, 0.05, 0.1, 0.2, 0.5))
TRANSFER = SweepSpec(
    "transfer", "fabrication spread σ_fab of a fresh chip", "nm", (0.0, 0.02, 0.04, 0.08, 0.12, 0.16), min_seeds=5
)
MISALIGNMENT = SweepSpec("misalignment", "mask rotation", "deg", (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0))
SWEEPS: dict[str, SweepSpec] = {spec.name: spec for spec in (DRIFT, NOISE, TRANSFER, MISALIGNMENT)}
"""The built-in sweeps by name (what ``labsat evaluate --sweep`` accepts)."""


def seed_count(count: int) -> str:
    """``"1 seed"`` or ``"N seeds"``: how legends and tables say how many seeds a number stands on."""
    return f"{count} seed" if count == 1 else f"{count} seeds"


def predicted_labels(classify: Classifier, x: Tensor, batch_size: int | None = None) -> Tensor:
    """Predicted labels for all of ``x``, in batches of ``batch_size`` (all at once when None)."""
    with torch.no_grad():
        outputs = [classify(batch) for batch in (x.split(batch_size) if batch_size else (x,))]
    return torch.cat([out.argmax(dim=-1) if out.dim() > 1 else out for out in outputs])


def accuracy(classify: Classifier, x: Tensor, y: Tensor, batch_size: int | None = None) -> float:
    """Fraction of ``x`` classified as ``y``."""
    return float((predicted_labels(classify, x, batch_size) == y.to(x.device)).double().mean())


@dataclass(frozen=True)
class SweepResult:
    """Accuracy at every (value, seed) point of one sweep; ``accuracy[i, s]`` is value ``i``, seed ``s``."""

    spec: SweepSpec  # its ``values`` are the ones swept
    seeds: tuple[int, ...]
    accuracy: Tensor  # (len(values), len(seeds)), fractions in [0, 1]

    @property
    def values(self) -> tuple[float, ...]:
        return self.spec.values

    @property
    def mean(self) -> Tensor:
        return self.accuracy.mean(dim=1)

    @property
    def std(self) -> Tensor:
        """Sample standard deviation over seeds (0 with a single seed, where no spread is observable)."""
        if len(self.seeds) < 2:
            return torch.zeros(len(self.values), dtype=self.accuracy.dtype)
        return self.accuracy.std(dim=1)

    @property
    def worst(self) -> float:
        """The lowest mean accuracy over the sweep: the number a user who cannot control the condition gets."""
        return float(self.mean.min())

    def as_dict(self) -> dict[str, Any]:
        return {
            "sweep": self.spec.name,
            "label": self.spec.label,
            "unit": self.spec.unit,
            "values": list(self.values),
            "seeds": list(self.seeds),
            "mean": self.mean.tolist(),
            "std": self.std.tolist() if len(self.seeds) > 1 else None,  # one seed has no spread to report
            "accuracy": self.accuracy.tolist(),
        }


def sweep_grid(
    spec: SweepSpec, seeds: int, seed: int, values: Sequence[float] | None = None
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The points (``spec``'s values, or ``values``) and the seeds ``seed, seed + 1, …`` a sweep runs over.

    Every way of running a sweep (one model per point and seed, or a population per point) takes its grid from
    here, so a seed means the same draw whichever way it is run.
    """
    if seeds < spec.min_seeds:
        raise ValueError(f"the {spec.name} sweep needs at least {spec.min_seeds} seeds per point, got {seeds}")
    points = tuple(float(v) for v in (spec.values if values is None else values))
    return points, tuple(range(seed, seed + seeds))


def run_sweep(
    spec: SweepSpec,
    perturbed: PerturbedModel,
    x: Tensor,
    y: Tensor,
    *,
    seeds: int = 3,
    seed: int = 0,
    values: Sequence[float] | None = None,
    batch_size: int | None = None,
) -> SweepResult:
    """Accuracy on the full split ``(x, y)`` at every value of ``spec`` (or ``values``) for ``seeds`` seeds."""
    points, seed_list = sweep_grid(spec, seeds, seed, values)
    table = torch.empty(len(points), seeds, dtype=torch.float64)
    for i, value in enumerate(points):
        for s, point_seed in enumerate(seed_list):
            generator = torch.Generator(device=x.device).manual_seed(point_seed)
            table[i, s] = accuracy(perturbed(value, generator), x, y, batch_size)
    return SweepResult(replace(spec, values=points), seed_list, table)


def drift_sweep(perturbed: PerturbedModel, x: Tensor, y: Tensor, **options: Any) -> SweepResult:
    """Accuracy vs a uniform chip temperature change (default :data:`DRIFT_RANGE_K`)."""
    return run_sweep(DRIFT, perturbed, x, y, **options)


def noise_sweep(perturbed: PerturbedModel, x: Tensor, y: Tensor, **options: Any) -> SweepResult:
    """Accuracy vs detector read-noise σ."""
    return run_sweep(NOISE, perturbed, x, y, **options)


def transfer_sweep(perturbed: PerturbedModel, x: Tensor, y: Tensor, **options: Any) -> SweepResult:
    """Accuracy of the same controls on fresh chips (one per seed, at least 5) vs fabrication spread."""
    options.setdefault("seeds", TRANSFER.min_seeds)
    return run_sweep(TRANSFER, perturbed, x, y, **options)
