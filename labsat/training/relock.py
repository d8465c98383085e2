"""Drift re-lock: estimate the chip's drift from a short pilot measurement, then re-solve the controls for it.

A uniform temperature change moves every ring of a bank by the same amount; training for robustness (SAT,
FD-SAT) can only flatten the loss against it, and at −2 K (0.16 nm, more than half a linewidth) nothing
trained stays accurate. But a uniform drift is *one* number. Measured, it can be undone: the heaters add the
heat the chip lost. The re-lock

1. runs one pilot batch (unlabelled inputs, e.g. a few training images) through the first photonic layer on
   the device, the only device queries it makes, counted in :attr:`Relock.pilot`;
2. finds the drift ``ΔT`` whose twin (:attr:`PhysicalLayer.drift_twin`) reproduces that readout best (a bounded
   one-dimensional search on the twin);
3. re-solves every layer's controls on the twin at ``ΔT`` so that its transfer (the readout of each unit
   input) matches the transfer the network was trained with at calibration, projecting every iterate onto the
   controls the guard accepts. No device query: the twin does this part.

The re-solved controls are then programmed like any others, through the guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from labsat.readout import QueryStats
from labsat.training.network import PhotonicNet
from labsat.training.physical import PhysicalLayer

DRIFT_SEARCH_K = (-5.0, 5.0)
"""Drifts the pilot fit searches (K since calibration): beyond a few kelvin a bank needs a new calibration."""

SOLVE_STEPS = 300
SOLVE_LR = 0.02
"""Adam steps (default) and learning rate (volts) of the control re-solve on the twin; fewer steps trade a
looser match of the trained transfer for less time on the bench PC, never a device query."""


@dataclass(frozen=True)
class Relock:
    """The drift a pilot measurement found, the controls that undo it, and what it cost on the device."""

    delta_t_k: float
    controls: tuple[Tensor, ...]
    pilot: QueryStats
    pilot_misfit: float
    """Mean squared difference between the pilot readout and the twin at ``delta_t_k`` (readout units²)."""
    transfer_misfit: float
    """Mean squared difference between the re-solved and the trained transfer on the twin, over all layers."""

    def applied_to(self, net: PhotonicNet) -> PhotonicNet:
        """A copy of ``net`` with the re-locked controls (the digital parts unchanged)."""
        relocked = PhotonicNet.from_snapshot(net.sizes, net.snapshot())
        with torch.no_grad():
            for theta, controls in zip(relocked.theta, self.controls, strict=True):
                theta.copy_(controls)
        return relocked


def estimate_drift(physical: PhysicalLayer, controls: Tensor, pilot_x: Tensor) -> tuple[float, float, QueryStats]:
    """The drift (K) at which the twin best reproduces one device pass of ``pilot_x`` through ``controls``;
    returns it, its misfit and the device queries the pass cost."""
    if physical.drift_twin is None:
        raise ValueError("this layer's twin models no drift: a pilot measurement cannot be read as one")
    drift_twin = physical.drift_twin
    before = physical.stats()
    with torch.no_grad():
        measured = physical.system_forward(pilot_x, controls)
    cost = physical.stats().since(before)

    def misfit(kelvin: float) -> float:
        with torch.no_grad():
            return float((drift_twin(kelvin)(pilot_x, controls) - measured).square().mean())

    found = minimize_scalar(misfit, bounds=DRIFT_SEARCH_K, method="bounded", options={"xatol": 1e-3})
    return float(found.x), float(found.fun), cost


def resolve_controls(
    physical: PhysicalLayer, controls: Tensor, inputs: int, delta_t_k: float, steps: int = SOLVE_STEPS
) -> tuple[Tensor, float]:
    """Controls whose twin transfer at ``delta_t_k`` matches the transfer of ``controls`` at calibration.

    The transfer is the readout of each unit input (``inputs`` of them): the layer's weights with its gains and
    offsets. Every iterate is projected onto what the guard accepts, so the result is programmable as it is.
    """
    assert physical.drift_twin is not None
    drifted = physical.drift_twin(delta_t_k)
    eye = torch.eye(inputs, dtype=controls.dtype, device=controls.device)
    with torch.no_grad():
        target = physical.twin_layer(eye, controls)
    theta = controls.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=SOLVE_LR)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (drifted(eye, theta) - target).square().mean()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            theta.copy_(physical.nearest_allowed(theta))
    with torch.no_grad():
        final = float((drifted(eye, theta) - target).square().mean())
    return theta.detach(), final


def relock(net: PhotonicNet, physical: PhysicalLayer, pilot_x: Tensor, solve_steps: int = SOLVE_STEPS) -> Relock:
    """Estimate the drift from one pilot pass of ``pilot_x`` through the first layer, then re-solve every layer
    (``solve_steps`` Adam steps each)."""
    thetas: Sequence[Tensor] = [theta.detach() for theta in net.theta]
    with torch.no_grad():
        first_inputs = net.encode(pilot_x)
    delta_t_k, pilot_misfit, cost = estimate_drift(physical, thetas[0], first_inputs)
    solved = [
        resolve_controls(physical, theta, inputs, delta_t_k, solve_steps)
        for theta, inputs in zip(thetas, net.layer_sizes[:-1], strict=True)
    ]
    misfit = sum(m for _, m in solved) / len(solved)
    return Relock(delta_t_k, tuple(c for c, _ in solved), cost, pilot_misfit, misfit)
