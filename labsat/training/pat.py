"""Physics-aware training (Wright et al., Nature 2022): forward on the device, backward through the twin.

Each photonic layer is its own :class:`torch.autograd.Function` call: the forward pass sends the layer's
inputs to the device and returns what was *measured*, so the next layer (and finally the loss) sees the
real chip; the backward pass is the twin's vector–Jacobian product evaluated at those measured inputs and
the present controls. Model error therefore does not compound through the forward pass, and the loss
gradient is taken at the device's own output. One device forward per layer per pass; no device backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from labsat.training.network import LayerRunner
from labsat.training.physical import LayerFn, PhysicalLayer

Observer = Callable[[int, Tensor, Tensor, Tensor], None]
"""``(layer index, x, θ, measured y)``: called after each device forward (DAT fits its correctors on these)."""


BackwardRule = Callable[[Tensor, Tensor, Tensor, tuple[bool, bool]], tuple[Tensor | None, Tensor | None]]
"""``(x, θ, ∂L/∂y, (want ∂x, want ∂θ)) -> (∂L/∂x, ∂L/∂θ)`` at the saved point; None where not wanted."""


class MeasuredLayer(torch.autograd.Function):
    """``y = device(x, θ)`` forward (what was *measured*); a backward rule's gradients at the saved ``(x, θ)``.

    The rule is what tells the hardware-in-the-loop methods apart: PAT's is the twin's vector–Jacobian
    product (:func:`twin_vjp`), optical backprop's the device's own backward pass. Gradients come back in
    the inputs' dtype and device whatever the rule computed them in.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, theta: Tensor, device: LayerFn, rule: BackwardRule) -> Tensor:
        ctx.rule = rule
        ctx.save_for_backward(x, theta)
        measured = device(x.detach(), theta.detach())
        return measured.to(dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, theta = ctx.saved_tensors
        wants = ctx.needs_input_grad[:2]
        g_x, g_theta = ctx.rule(x.detach(), theta.detach(), grad.detach(), wants)
        return (
            None if g_x is None else g_x.to(dtype=x.dtype, device=x.device),
            None if g_theta is None else g_theta.to(dtype=theta.dtype, device=theta.device),
            None,
            None,
        )


def twin_vjp(twin: LayerFn) -> BackwardRule:
    """PAT's backward: ``(∂twin/∂x)ᵀ g, (∂twin/∂θ)ᵀ g`` at the saved ``(x, θ)``.

    The twin is called only in backward, lazily: whatever it is at that moment (DAT refits its corrector
    between the forward and the backward pass) is what gives the Jacobian. Only the gradients autograd
    asks for are computed, and only with respect to ``x`` and ``θ``: parameters inside the twin (a DAT
    corrector) never receive gradients from the task loss.
    """

    def rule(x: Tensor, theta: Tensor, grad: Tensor, wants: tuple[bool, bool]) -> tuple[Tensor | None, Tensor | None]:
        inputs = (x.requires_grad_(wants[0]), theta.requires_grad_(wants[1]))
        with torch.enable_grad():
            modelled = twin(*inputs)
            needed = [t for t, want in zip(inputs, wants, strict=True) if want]
            grads = iter(torch.autograd.grad(modelled, needed, grad)) if needed else iter(())
        g_x, g_theta = (next(grads) if want else None for want in wants)
        return g_x, g_theta

    return rule


def physics_aware(x: Tensor, theta: Tensor, device: LayerFn, twin: LayerFn) -> Tensor:
    """One PAT layer call: the device forward, the twin's VJP backward (:class:`MeasuredLayer`)."""
    return MeasuredLayer.apply(x, theta, device, twin_vjp(twin))


def pat_runner(
    physical: PhysicalLayer,
    twin_of: Callable[[int], LayerFn] | None = None,
    observe: Observer | None = None,
) -> LayerRunner:
    """Run every photonic layer as its own PAT call.

    ``twin_of(i)`` gives layer ``i``'s backward model (default: the plain twin for all layers); ``observe``
    sees each measurement, so one device forward can serve more than one purpose.
    """

    def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
        twin = physical.twin_layer if twin_of is None else twin_of(index)
        y = physics_aware(x, theta, physical.system_forward, twin)
        if observe is not None:
            observe(index, x.detach(), theta.detach(), y.detach())
        return y

    return run
