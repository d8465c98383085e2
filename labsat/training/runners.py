"""The plain ways to evaluate a photonic layer: an ideal weight matrix, the twin, the device.

The method-specific runners (PAT, NAT, DAT) live in their own modules; these three are the building
blocks they and the evaluation code share.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.training.network import LayerRunner
from labsat.training.physical import PhysicalLayer

WEIGHT_RANGE = (-1.0, 1.0)
"""What a balanced-detection weight can be; weight-space BP trains inside this box."""


def ideal_runner(index: int, x: Tensor, weights: Tensor) -> Tensor:
    """``x @ w.T`` with ``θ`` read as weights in [−1, 1]: the "ideal model" of weight-space BP."""
    return F.linear(x, weights.clamp(*WEIGHT_RANGE))


def twin_runner(physical: PhysicalLayer) -> LayerRunner:
    """Every photonic layer through the (differentiable) twin: in-silico training and evaluation."""

    def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
        return physical.twin_layer(x, theta)

    return run


def device_runner(physical: PhysicalLayer) -> LayerRunner:
    """Every photonic layer on the device, without a graph: evaluation and measurement."""

    def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
        with torch.no_grad():
            return physical.system_forward(x.detach(), theta.detach())

    return run
