"""From weights to controls: how weight-space training reaches the device, and how networks start.

Weight-space BP trains ideal weights ``w ∈ [−1, 1]`` and must then find controls that realise them. The
twin says which weights a control map produces; inverting it is a small least-squares problem in
control space, started from a lookup table so the local fit lands on a resonance's flank rather than in a
flat region where it has no gradient. Nothing here knows what a control is: any linear physical layer's
weights are its response to unit inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from labsat.training.network import PhotonicNet
from labsat.training.physical import LayerFn, PhysicalLayer
from labsat.training.runners import WEIGHT_RANGE


def twin_weights(twin_layer: LayerFn, controls: Tensor) -> Tensor:
    """The ``(out, in)`` weight matrix a model assigns to ``controls``: its outputs for unit inputs."""
    eye = torch.eye(controls.shape[1], dtype=controls.dtype, device=controls.device)
    return twin_layer(eye, controls).T


def _level_table(physical: PhysicalLayer, like: Tensor, grid_points: int) -> tuple[Tensor, Tensor]:
    """Control levels ``(G,)`` and the twin's weights ``(G, out, in)`` when every control sits at each level."""
    low, high = physical.control_range
    levels = torch.linspace(low, high, grid_points, dtype=like.dtype, device=like.device)
    with torch.no_grad():
        table = torch.stack([twin_weights(physical.twin_layer, torch.full_like(like, float(v))) for v in levels])
    return levels, table


def peak_controls(physical: PhysicalLayer, shape: Sequence[int], grid_points: int = 161) -> Tensor:
    """Per element, the control where the twin's weight peaks: a ring's resonance, the steepest place around.

    SAT's adaptive scaling ``|θ − θ_ref| + η`` measured from here perturbs each control in proportion to
    its distance from resonance (ASAM's relative perturbation, as in the SAT paper, where the control *is*
    the detuning), instead of in proportion to its distance from 0 V, which means nothing physically.
    """
    levels, table = _level_table(physical, torch.zeros(tuple(shape)), grid_points)
    return levels[table.argmax(dim=0)]


def weights_to_controls(
    physical: PhysicalLayer, weights: Tensor, *, steps: int = 300, lr: float = 0.01, grid_points: int = 81
) -> Tensor:
    """Controls whose twin weights are closest to ``weights`` (least squares, inside the control range).

    Start: for every element, the level of a uniform control map whose weight there is nearest the target
    (a lookup table over ``grid_points`` levels; it sees the crosstalk of equally driven neighbours, close
    enough to pick the right flank). Then ``steps`` Adam steps on ``‖W(θ) − w‖²`` with the real
    neighbours, projected onto the settings the device accepts. ``steps=0`` returns the lookup alone (initialisation).
    """
    target = weights.detach()
    levels, table = _level_table(physical, target, grid_points)
    controls = physical.nearest_allowed(levels[(table - target).abs().argmin(dim=0)])
    if steps == 0:
        return controls
    controls = controls.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([controls], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (twin_weights(physical.twin_layer, controls) - target).square().sum().backward()
        optimizer.step()
        with torch.no_grad():
            controls.copy_(physical.nearest_allowed(controls))
    return controls.detach()


def random_weights(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """Uniform weights over the whole balanced range: the common starting point of every method."""
    low, high = WEIGHT_RANGE
    return torch.rand(tuple(shape), generator=generator) * (high - low) + low


def initialise(net: PhotonicNet, physical: PhysicalLayer | None, generator: torch.Generator) -> None:
    """Random weights in every photonic layer; realised as controls through the twin unless ``physical`` is None.

    A system with its own ``initial_controls`` (an MZI mesh: random phases) starts from those instead. A
    digital encoder, if the network has one, is drawn from the same generator.

    Weight-space and control-space methods thus start from the same weights for a given seed, which is
    what makes their comparison fair.
    """
    with torch.no_grad():
        if net.encoder is not None:
            net.encoder.reset(generator)
        for theta in net.photonic_parameters():
            if physical is not None and physical.initial_controls is not None:
                theta.copy_(physical.initial_controls(tuple(theta.shape), generator))
                continue
            weights = random_weights(theta.shape, generator).to(theta)
            theta.copy_(weights if physical is None else weights_to_controls(physical, weights, steps=0))


def deploy_weights(net: PhotonicNet, physical: PhysicalLayer, *, steps: int = 300) -> PhotonicNet:
    """A control-space copy of a weight-space network: each weight matrix inverted through the twin."""
    deployed = copy.deepcopy(net)
    for theta in deployed.photonic_parameters():
        controls = weights_to_controls(physical, theta.detach().clamp(*WEIGHT_RANGE), steps=steps)
        with torch.no_grad():
            theta.copy_(controls)
    return deployed
