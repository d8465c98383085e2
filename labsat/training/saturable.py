"""Saturable-absorber networks in training: the :class:`PhysicalLayer` of an SLM + absorber layer.

The absorber belongs *inside* the photonic layer (``y = SA(W x)``), not in the network between layers,
because it acts on the optical field before anything is detected: the camera reads the absorber's output,
and a device can neither skip it forwards nor probe it backwards separately from the MVM it follows. What
:class:`~labsat.training.network.PhotonicNet` puts between photonic layers (standardise, scale/bias, ReLU)
happens after that read-out, on the bench PC, as it re-encodes the readings as the next layer's input
fields; its backward is exact autograd in every method. So the network class is unchanged, and the only
place where optical backprop and exact backprop differ is the one the physics decides: the gradient
through the absorber.

The layer's controls are its SLM weights themselves (``(out, in)`` in [−1, 1]); they start uniform in
``[−init_scale, init_scale]`` rather than over the whole range, so that the first fields ``W x`` sit near
saturation (``s ~ 1``) instead of deep in the bleached regime where the absorber is linear.

The twin is the device's own noiseless physics (:meth:`SaturableLayerSimulator.exact_layer`): PAT through
it is the exact-gradient reference for optical backprop, since it shares the measured forward pass and
differs only in the backward, the exact chain rule where ``obp`` has the probe.
"""

from __future__ import annotations

import torch
from torch import Tensor

from labsat.simulators.saturable import SaturableLayerSimulator
from labsat.training.physical import PhysicalLayer


def saturable_physical_layer(device: SaturableLayerSimulator, init_scale: float = 0.5) -> PhysicalLayer:
    """``device`` as training sees it: pump pass forward, probe pass backward, its exact physics as the twin."""
    low, high = device.control_range
    if not 0 < init_scale <= high:
        raise ValueError(f"init_scale must be in (0, {high}], the SLM's range, got {init_scale}")

    def initial_controls(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return (2 * torch.rand(shape, generator=generator) - 1) * init_scale

    return PhysicalLayer(
        system_forward=device.forward,
        twin_layer=device.exact_layer,
        control_range=(low, high),
        stats=lambda: device.stats.copy(),
        initial_controls=initial_controls,
        system_backward=device.backward,
    )
