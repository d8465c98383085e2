"""Noise-aware training: the twin's forward pass carries the device's own read noise.

A device does not return the same numbers twice. Training on a noiseless twin finds settings whose
margins are thinner than that scatter; injecting noise of the *measured* size during training makes the
network keep its decisions clear of it. The noise model follows how the System measures: each sample is
scaled to full input power before it is sent and scaled back after, so detector noise that is additive
in volts appears in the layer's output as ``σ · max(x)`` per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from labsat.training.network import LayerRunner
from labsat.training.physical import PhysicalLayer


def input_scale(x: Tensor) -> Tensor:
    """Each sample's largest input ``(B, 1)``: the factor the System scales that sample's readings by."""
    return x.detach().amax(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def fit_read_noise(physical: PhysicalLayer, x: Tensor, theta: Tensor, repeats: int = 8) -> float:
    """σ of the device's read noise per unit input scale, from ``repeats`` forwards of one batch.

    The spread over repeats at fixed ``(x, θ)`` is the noise alone (the weights do not change between
    them); the pooled variance over samples and outputs, normalised per sample by ``max(x)``, gives one σ.
    Costs ``repeats`` device forwards.
    """
    if repeats < 2:
        raise ValueError(f"need at least 2 repeats to see a spread, got {repeats}")
    with torch.no_grad():
        outputs = torch.stack([physical.system_forward(x, theta) for _ in range(repeats)])
    normalised = outputs / input_scale(x)
    return float(normalised.var(dim=0, unbiased=True).mean().sqrt())


def nat_runner(physical: PhysicalLayer, sigma: float, generator: torch.Generator) -> LayerRunner:
    """Twin forward plus Gaussian noise ``σ·max(x)·N(0, 1)``, fresh every call (``generator`` is a CPU one)."""

    def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
        y = physical.twin_layer(x, theta)
        noise = torch.randn(y.shape, generator=generator).to(device=y.device, dtype=y.dtype)
        return y + noise * (sigma * input_scale(x))

    return run
