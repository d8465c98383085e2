"""Accuracy of a trained network, on the device or on a model: the numbers every table reports.

The runner decides where the photonic layers run: ``device_runner(physical)`` for the chip as it is now
(after ``chip.set_ambient(ΔT)`` on a simulator, say), ``twin_runner(physical.with_twin(f))`` for any model
``f``, e.g. ``functools.partial(twin.layer, delta_t_k=-1.0)`` for the twin at −1 K.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from labsat.datasets import Split
from labsat.training.network import LayerRunner, PhotonicNet
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner

EVAL_BATCH = 512
"""Samples per evaluation pass: one device program per tile covers the whole digits test split."""


def predict(net: PhotonicNet, x: Tensor, run: LayerRunner, batch_size: int = EVAL_BATCH) -> Tensor:
    """Logits ``(N, classes)`` for all of ``x``, without a graph."""
    with torch.no_grad():
        return torch.cat([net(batch, run) for batch in x.split(batch_size)])


def accuracy(net: PhotonicNet, split: Split, run: LayerRunner, batch_size: int = EVAL_BATCH) -> float:
    """Fraction of ``split`` classified correctly with the photonic layers evaluated by ``run``."""
    predicted = predict(net, split.x, run, batch_size).argmax(dim=1)
    return float((predicted == split.y.to(predicted.device)).double().mean())


class WarmableChip(Protocol):
    """A simulated chip whose temperature a test can change (the bench's ground truth, never a driver)."""

    def set_ambient(self, delta_k: float) -> None: ...


def accuracy_under_drift(
    net: PhotonicNet, split: Split, physical: PhysicalLayer, chip: WarmableChip, drifts_k: Sequence[float]
) -> list[float]:
    """Device accuracy on ``split`` with the simulated chip ``drifts_k`` kelvin from its reference, one after the
    other; the chip is put back at 0 K after."""
    row = []
    for delta in drifts_k:
        chip.set_ambient(delta)
        row.append(accuracy(net, split, device_runner(physical)))
    chip.set_ambient(0.0)
    return row
