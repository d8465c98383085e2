"""Optical backpropagation (Guo et al., Photon. Res. 2021; Spall et al., Adv. Photon. 2025): both passes on the device.

Each photonic layer is its own :class:`~labsat.training.pat.MeasuredLayer` call, as in PAT
(:mod:`labsat.training.pat`), but where PAT's backward is the *twin's* vector–Jacobian product, here the
backward pass is the device's:
:attr:`~labsat.training.physical.PhysicalLayer.system_backward` sends the error backwards through the
hardware (for a saturable-absorber layer: a weak probe through the absorber the forward pump saturates,
then through the transposed MVM) and returns what was read out. The twin is never called, so no digital
model of the nonlinearity is needed, and the gradient carries the device's own approximation (the probe
sees the absorber's transmission, not its derivative: see :mod:`labsat.physics.saturable`).

Autograd still does everything digital: the loss, and the network's digital maps between photonic layers
(:class:`~labsat.training.network.PhotonicNet`), whose backward is exact anyway. Cost per layer and step:
one forward (pump) pass and one backward (probe) pass.
"""

from __future__ import annotations

from torch import Tensor

from labsat.errors import LabsatError
from labsat.training.network import LayerRunner
from labsat.training.pat import BackwardRule, MeasuredLayer
from labsat.training.physical import LayerBackwardFn, LayerFn, PhysicalLayer


class OpticalBackpropError(LabsatError):
    """Optical backprop asked of a device that has no backward pass of its own."""


def device_rule(device_backward: LayerBackwardFn) -> BackwardRule:
    """The device's own backward pass as a :class:`~labsat.training.pat.MeasuredLayer` rule.

    The device always returns both gradients (the light reaches both read-out planes either way); the ones
    autograd did not ask for are dropped.
    """

    def rule(x: Tensor, theta: Tensor, grad: Tensor, wants: tuple[bool, bool]) -> tuple[Tensor | None, Tensor | None]:
        g_x, g_theta = device_backward(x, theta, grad)
        return (g_x if wants[0] else None, g_theta if wants[1] else None)

    return rule


def optical_backprop(x: Tensor, theta: Tensor, device_forward: LayerFn, device_backward: LayerBackwardFn) -> Tensor:
    """One optical-backprop layer call: forward (pump) and backward (probe) both on the device."""
    return MeasuredLayer.apply(x, theta, device_forward, device_rule(device_backward))


def obp_runner(physical: PhysicalLayer) -> LayerRunner:
    """Run every photonic layer forward *and* backward on the device."""
    backward = physical.system_backward
    if backward is None:
        raise OpticalBackpropError(
            "method 'obp' needs a device with its own backward pass (PhysicalLayer.system_backward), "
            "e.g. a saturable-absorber layer's probe pass; this one has none"
        )

    def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
        return optical_backprop(x, theta, physical.system_forward, backward)

    return run
