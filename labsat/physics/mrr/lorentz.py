"""The fused autograd node of the ring weights: heater drive → heat → Lorentzian → weight, with hand-written
backward and forward-mode rules, so a layer's weights cost a few large tensor operations instead of a graph per ring."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor
from torch.nn.grad import conv2d_weight

from labsat.physics.compute import functorch_active
from labsat.physics.mrr.thermal import LayerCoupling, crosstalk_grid
from labsat.physics.mrr.tiles import from_logical_grid, logical_grid, logical_grid_shape

_NodeParts = tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]
"""``(power, heat, u, L, ½·dP/dV)`` of :func:`_lorentz_parts`; the last is None for a power drive."""

_NodeInputs = tuple[Any, ...]
"""``(drive, power_gain, kernel, coupling, detune, amplitude, offset, blocks, flipped_blocks, layout)``.

See :class:`_LorentzWeights`.
"""


def _crosstalk(maps: Tensor, kernel: Tensor, blocks: Tensor | LayerCoupling | None, adjoint: bool = False) -> Tensor:
    """The crosstalk (or its adjoint) in the form the node was given: a layer's own operator, or the ring grid's."""
    if isinstance(blocks, LayerCoupling):
        return blocks.adjoint(maps) if adjoint else blocks.heat(maps)
    return crosstalk_grid(maps, kernel, blocks, adjoint=adjoint)


def _lorentz_parts(
    drive: Tensor,
    power_gain: Tensor | None,
    kernel: Tensor,
    coupling: Tensor,
    detune: Tensor,
    blocks: Tensor | LayerCoupling | None,
) -> _NodeParts:
    """Heater power, heat, ``u = 2δ/FWHM``, ``L = 1/(1 + u²)`` and ``½·dP/dV`` (volts drive only), for every pass."""
    half_slope = None if power_gain is None else drive * power_gain
    power = drive if half_slope is None else half_slope * drive
    heat = _crosstalk(power, kernel, blocks)
    u = torch.addcmul(detune, coupling, heat, value=-1)
    return power, heat, u, torch.addcmul(u.new_ones(()), u, u).reciprocal_(), half_slope


def _on_grid(inputs: _NodeInputs) -> _NodeInputs:
    """The node inputs with the drive on the ring grid (a logical ``(out, in)`` drive padded to whole tiles)."""
    layout = inputs[9]
    return inputs if layout is None else (logical_grid(inputs[0], *layout), *inputs[1:])


def _off_grid(inputs: _NodeInputs, tensor: Tensor) -> Tensor:
    """A drive-shaped grid tensor back in the drive's own layout."""
    return tensor if inputs[9] is None else from_logical_grid(tensor, *inputs[0].shape[-2:])


def _parts_of(grid_inputs: _NodeInputs) -> _NodeParts:
    drive, power_gain, kernel, coupling, detune, _, _, blocks, _, _ = grid_inputs
    return _lorentz_parts(drive, power_gain, kernel, coupling, detune, blocks)


def _lorentz_grads(
    grid_inputs: _NodeInputs,
    parts: _NodeParts,
    grad: Tensor,
    needs: tuple[bool, ...],
    drive_shape: torch.Size,
) -> list[Tensor | None]:
    """Vector–Jacobian product of the node on the grid, for every input that needs one.

    The grid drive itself (``grid_inputs[0]``) is only read for the gradient of ``power_gain``.
    """
    drive, power_gain, kernel, coupling, detune, amplitude, offset, _, flipped_blocks, _ = grid_inputs
    power, heat, u, lorentz, half_slope = parts
    grads: list[Tensor | None] = [None] * 10
    if needs[5]:
        grads[5] = _sum_to(grad * lorentz, amplitude)
    if needs[6]:
        grads[6] = _sum_to(grad, offset)
    # d out/du = −2·amplitude·u·L², du/d heat = −coupling. Per-ring factors are combined first so that
    # tensors of the full (sample or tile) size are touched as few times as possible.
    slope = u * lorentz * lorentz * grad
    if needs[3] or needs[4]:
        g_u = slope * (-2 * amplitude)
        if needs[4]:
            grads[4] = _sum_to(g_u, detune)
        if needs[3]:
            grads[3] = _sum_to(-g_u * heat, coupling)
    if needs[0] or needs[1] or needs[2]:
        # For a volts drive the heat gradient carries the 2 of dP/dV = 2·V·gain: the drive gradient is one product.
        doubled = power_gain is not None
        g_heat = _sum_to(slope * ((4 if doubled else 2) * amplitude * coupling), heat)
        if needs[2]:
            _refuse_kernel_derivative(grid_inputs[7])
            grads[2] = _kernel_grad(power, g_heat, kernel.shape) * (0.5 if doubled else 1.0)
        g_power = _crosstalk(g_heat, kernel, flipped_blocks, adjoint=True)
        if half_slope is None:
            grads[0] = _sum_to_shape(g_power, drive_shape) if needs[0] else None
        else:
            if needs[0]:
                grads[0] = _sum_to_shape(g_power * half_slope, drive_shape)
            if needs[1]:
                grads[1] = _sum_to(g_power * drive.square() * 0.5, power_gain)
    return grads


def _lorentz_tangent(grid_inputs: _NodeInputs, tangents: tuple[Tensor | None, ...]) -> Tensor:
    """Jacobian–vector product of the node on the grid (forward-mode AD), from the inputs alone."""
    drive, power_gain, kernel, coupling, _, amplitude, _, blocks, _, _ = grid_inputs
    t_drive, t_gain, t_kernel, t_coupling, t_detune, t_amp, t_offset = tangents[:7]
    power, heat, u, lorentz, _ = _parts_of(grid_inputs)
    t_power = None
    if t_drive is not None:
        t_power = t_drive if power_gain is None else 2 * drive * power_gain * t_drive
    if t_gain is not None:
        t_power = _add(t_power, drive.square() * t_gain)
    t_heat = None if t_power is None else _crosstalk(t_power, kernel, blocks)
    if t_kernel is not None:
        _refuse_kernel_derivative(blocks)
        t_heat = _add(t_heat, crosstalk_grid(power, t_kernel))
    t_u = t_detune
    if t_coupling is not None:
        t_u = _add(t_u, -t_coupling * heat)
    if t_heat is not None:
        t_u = _add(t_u, -coupling * t_heat)
    t_out = torch.zeros_like(u) if t_u is None else amplitude * (-2 * u * lorentz.square()) * t_u
    if t_amp is not None:
        t_out = t_out + t_amp * lorentz
    if t_offset is not None:
        t_out = t_out + t_offset
    return t_out


def _refuse_kernel_derivative(blocks: Tensor | LayerCoupling | None) -> None:
    """A :class:`LayerCoupling` is built from a fixed kernel: a derivative in the kernel must take the grid form."""
    if isinstance(blocks, LayerCoupling):
        raise ValueError("a LayerCoupling is built for a fixed crosstalk kernel; its derivative needs the ring grid")


def _add(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    """``grad`` reduced over the dimensions ``like`` was broadcast along."""
    return _sum_to_shape(grad, like.shape)


def _sum_to_shape(grad: Tensor, shape: torch.Size) -> Tensor:
    return grad if grad.shape == shape else grad.sum_to_size(shape)


def _node_backward(
    inputs: _NodeInputs, parts: _NodeParts | None, grad: Tensor, needs: tuple[bool, ...]
) -> tuple[Tensor | None, ...]:
    """Shared backward of both node classes; ``parts`` None means recompute them (differentiably)."""
    layout = inputs[9]
    if parts is None or needs[1]:
        grid_inputs = _on_grid(inputs)
        drive_shape = grid_inputs[0].shape
    else:  # the saved intermediates suffice; spare tiling the drive again
        grid_inputs = (None, *inputs[1:])
        drive_shape = inputs[0].shape if layout is None else logical_grid_shape(inputs[0].shape, *layout)
    if layout is not None:
        grad = logical_grid(grad, *layout)
    parts = _parts_of(grid_inputs) if parts is None else parts
    grads = _lorentz_grads(grid_inputs, parts, grad, needs, drive_shape)
    if grads[0] is not None:
        grads[0] = _off_grid(inputs, grads[0])
    return tuple(grads)


def _node_tangent(inputs: _NodeInputs, tangents: tuple[Tensor | None, ...]) -> Tensor:
    grid_inputs = _on_grid(inputs)
    t_drive = tangents[0]
    if t_drive is not None and inputs[9] is not None:
        t_drive = logical_grid(t_drive, *inputs[9])
    return _off_grid(inputs, _lorentz_tangent(grid_inputs, (t_drive, *tangents[1:])))


def _save(ctx: Any, inputs: _NodeInputs, *extra: Tensor | None) -> None:
    """Saves the node's inputs for backward and jvp: tensors through autograd, the rest on ``ctx`` as they are.

    A :class:`LayerCoupling` (in the crosstalk slots) holds constants of a fixed chip, which need no saving.
    """
    ctx.couplings = tuple(part if isinstance(part, LayerCoupling) else None for part in inputs[7:9])
    tensors = (*inputs[:7], *(None if isinstance(part, LayerCoupling) else part for part in inputs[7:9]))
    ctx.save_for_backward(*tensors, *extra)
    ctx.save_for_forward(*tensors)
    ctx.layout = inputs[9]


def _saved(ctx: Any) -> _NodeInputs:
    """The node's inputs as :func:`_save` kept them."""
    saved = ctx.saved_tensors
    coupling, flipped = (given if given is not None else saved[7 + i] for i, given in enumerate(ctx.couplings))
    return (*saved[:7], coupling, flipped, ctx.layout)


class _LorentzWeights(torch.autograd.Function):
    """Heater drive -> ``amplitude·L + offset`` in one autograd node with hand-written derivatives.

    The composed form (tiling, power, crosstalk, resonance, Lorentzian, weight, readout scale) records
    ~20 autograd nodes; at weight-bank sizes their overhead outweighs the arithmetic, and one node
    keeps a physical layer within a small factor of ``nn.Linear``. Gradients reach every input, so a
    twin fits its physical parameters through the same node.

    Inputs, all broadcasting to the ring grid ``(..., R, T, C)``: ``power_gain`` is ``1e3/R`` (drive in
    volts, ``P = V²·gain``) or None (drive already in mW); ``coupling = η·2/FWHM``;
    ``detune = (λ_c − λ_rest − drift·ΔT)·2/FWHM``, so that ``u = detune − coupling·heat``;
    ``amplitude = 2·D·scale`` and ``offset = −scale`` (scale 1 for bare weights ``2·T_d − 1``);
    ``blocks``/``flipped_blocks`` are prebuilt crosstalk coupling matrices of the kernel and its flip, or None;
    or both one :class:`LayerCoupling`, for a logical ``(..., out, in)`` drive and per-ring inputs already laid
    out as the layer (no ``layout``; the kernel then gets no derivative).
    With ``layout = (R, C)`` the drive (and the output) is a logical ``(..., out, in)`` matrix, tiled
    onto the grid inside the node.

    A plain backward reuses the intermediates saved by the forward. Under ``create_graph`` (Hessian-vector
    products, gradgradcheck) it recomputes them from the inputs with differentiable operations, which
    makes the backward itself differentiable: saved intermediates would be constants to a second
    derivative. :class:`_TransformableLorentzWeights` is the same node for ``torch.func`` transforms.
    """

    @staticmethod
    def forward(ctx: Any, *inputs: Any) -> Tensor:
        grid_inputs = _on_grid(inputs)
        parts = _parts_of(grid_inputs)
        _save(ctx, inputs, *parts)
        return _off_grid(inputs, torch.addcmul(inputs[6], inputs[5], parts[3]))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        parts = None if torch.is_grad_enabled() else cast(_NodeParts, tuple(ctx.saved_tensors[9:]))
        return _node_backward(_saved(ctx), parts, grad, ctx.needs_input_grad)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor:
        return _node_tangent(_saved(ctx), tangents)


class _TransformableLorentzWeights(torch.autograd.Function):
    """:class:`_LorentzWeights` in the form ``torch.func`` transforms accept (``vmap``, ``grad``, ``jvp``, ``hessian``).

    It recomputes its intermediates in backward and jvp, so that nested transforms see them as functions
    of the inputs. Slower per call (argument binding, no saved intermediates), hence only used under a
    transform.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        drive: Tensor,
        power_gain: Tensor | None,
        kernel: Tensor,
        coupling: Tensor,
        detune: Tensor,
        amplitude: Tensor,
        offset: Tensor,
        blocks: Tensor | None,
        flipped_blocks: Tensor | None,
        layout: tuple[int, int] | None,
    ) -> Tensor:
        inputs = (drive, power_gain, kernel, coupling, detune, amplitude, offset, blocks, flipped_blocks, layout)
        lorentz = _parts_of(_on_grid(inputs))[3]
        return _off_grid(inputs, torch.addcmul(offset, amplitude, lorentz))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _save(ctx, inputs)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return _node_backward(_saved(ctx), None, grad, ctx.needs_input_grad)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor:
        return _node_tangent(_saved(ctx), tangents)


def lorentz_weights(*inputs: Any) -> Tensor:
    """The fused node; the transform-ready variant only where a ``torch.func`` transform needs it."""
    if functorch_active():
        return _TransformableLorentzWeights.apply(*inputs)
    return _LorentzWeights.apply(*inputs)


def _kernel_grad(power: Tensor, g_heat: Tensor, kernel_shape: torch.Size) -> Tensor:
    """d(loss)/d(kernel) of :func:`crosstalk_grid`: the correlation of the power maps with the heat gradient."""
    kh, kw = kernel_shape
    rows, cols = power.shape[-3], power.shape[-1]
    return conv2d_weight(
        power.movedim(-2, -3).reshape(-1, 1, rows, cols),
        (1, 1, kh, kw),
        g_heat.movedim(-2, -3).reshape(-1, 1, rows, cols),
        padding=(kh // 2, kw // 2),
    ).view(kh, kw)
