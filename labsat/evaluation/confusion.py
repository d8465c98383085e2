"""Confusion matrices: which classes a perturbed chip confuses, not only how many it gets wrong.

The SAT work shows them under drift (−1.3 K): a BP model collapses onto one or two classes while a SAT
model keeps the diagonal. The perturbation comes through the same factory a sweep uses, so a confusion
matrix is "one point of a sweep, looked at class by class".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from labsat.evaluation.sweeps import PerturbedModel, predicted_labels


def confusion_matrix(predicted: Tensor, labels: Tensor, num_classes: int | None = None) -> Tensor:
    """Counts ``(K, K)``: row = true class, column = predicted class."""
    labels = labels.to(predicted.device).long()
    predicted = predicted.long()
    k = num_classes or int(max(int(labels.max()), int(predicted.max()))) + 1
    return torch.bincount(labels * k + predicted, minlength=k * k).view(k, k).cpu()


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix and the condition it was measured under (e.g. ``"ΔT = −1.3 K, seed 0"``)."""

    matrix: Tensor  # (K, K) counts
    condition: str

    @property
    def accuracy(self) -> float:
        return float(self.matrix.diagonal().sum() / self.matrix.sum())

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "matrix": self.matrix.tolist(), "accuracy": self.accuracy}


def confusion(
    perturbed: PerturbedModel,
    x: Tensor,
    y: Tensor,
    *,
    value: float = 0.0,
    seed: int = 0,
    condition: str = "",
    num_classes: int | None = None,
    batch_size: int | None = None,
) -> Confusion:
    """The confusion matrix of the system perturbed by ``value`` (seeded like one sweep point)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    predicted = predicted_labels(perturbed(value, generator), x, batch_size)
    return Confusion(confusion_matrix(predicted, y, num_classes), condition or f"value {value:g}, seed {seed}")
