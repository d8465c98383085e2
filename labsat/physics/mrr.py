"""Microring-resonator (MRR) weight bank: differentiable physics shared by the simulator and the twin.

A broadcast-and-weight bank has ``R`` rows (output neurons, one balanced photodetector each) and ``C``
columns (WDM input channels). Ring ``(r, c)`` sits near channel ``c``; its heater red-shifts the
resonance, which sets how much of channel ``c`` the ring drops. With balanced detection of the drop
and through ports, the ring's weight is ``w = T_d − T_t ∈ [−1, 1]``.

The simulator evaluates these functions with its hidden ground-truth :class:`MRRChipParams`; a
digital twin evaluates the *same* functions with fitted parameters (:class:`MRRBankModel` with
trainable fields). Keeping one implementation means twin error is fitting error, never a second,
slightly different physics model.

Shapes. Per-chip tensors may carry leading batch dimensions ``S`` (a Monte-Carlo population of chips,
see ``labsat.simulators.mrr.draw_chips``): ``(*S, R, C)`` per ring, ``(*S, C)`` per channel, ``(*S, R)``
per row. Sample batches then come out as ``(*S, B, ...)``. The thermal crosstalk kernel is shared by all
chips of a population: it is set by the heater geometry, not by fabrication scatter.

Units: nm, mW, V, Ω, K.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labsat.physics.chip import ChipTensors, register_chip_tensors

TemperatureShift = float | Tensor
"""A uniform chip temperature change ΔT in K: a float, or a tensor broadcastable to the ring grid."""

_RING_FIELDS = (
    "rest_resonance_nm",
    "fwhm_nm",
    "drop_depth",
    "efficiency_nm_per_mw",
    "heater_resistance_ohm",
)
_CHANNEL_FIELDS = ("channel_wavelength_nm", "modulator_v_pi", "input_power_mw")
_ROW_FIELDS = ("readout_volts_per_mw", "readout_offset_v")
TENSOR_FIELDS = (
    "channel_wavelength_nm",
    *_RING_FIELDS,
    "crosstalk_kernel",
    "modulator_v_pi",
    "input_power_mw",
    *_ROW_FIELDS,
)
"""Names of the tensor fields of :class:`MRRChipParams` (the fittable quantities of a twin)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class MRRChipParams(ChipTensors):
    """Everything that distinguishes one MRR chip (plus its modulators and detectors) from another.

    ``rest_resonance_nm`` is the resonance with the heater off at the reference temperature: the
    design wavelength plus this ring's fabrication offset. Heaters only ever red-shift it.
    ``crosstalk_kernel[i, j]`` is the fraction of the heater power of ring ``(r + i − kh//2, c + j − kw//2)``
    that reaches ring ``(r, c)``; its centre is 1 and its sides are odd.
    ``spectral_crosstalk`` makes every ring of a row filter every channel (see :func:`bank_weights`).

    Frozen: use :func:`dataclasses.replace` for a changed chip. Constants derived from the tensors
    (``1e3/R``, ``2/FWHM``, …) are cached per instance while no tensor requires grad; in-place edits of
    a tensor invalidate them, edits through ``.data`` do not (autograd cannot see those either).
    """

    FIELDS: ClassVar[tuple[str, ...]] = TENSOR_FIELDS

    channel_wavelength_nm: Tensor  # (*S, C)
    rest_resonance_nm: Tensor  # (*S, R, C)
    fwhm_nm: Tensor  # (*S, R, C)
    drop_depth: Tensor  # (*S, R, C)
    efficiency_nm_per_mw: Tensor  # (*S, R, C)
    heater_resistance_ohm: Tensor  # (*S, R, C)
    crosstalk_kernel: Tensor  # (kh, kw)
    drift_nm_per_k: float = 0.08
    modulator_v_pi: Tensor  # (*S, C)
    input_power_mw: Tensor  # (*S, C)
    readout_volts_per_mw: Tensor  # (*S, R)
    readout_offset_v: Tensor  # (*S, R)
    spectral_crosstalk: bool = False

    def __post_init__(self) -> None:
        rows, cols = self.rest_resonance_nm.shape[-2:]
        for name in _RING_FIELDS:
            if getattr(self, name).shape[-2:] != (rows, cols):
                raise ValueError(f"{name} must end in ({rows}, {cols}), got {tuple(getattr(self, name).shape)}")
        for name in _CHANNEL_FIELDS:
            if getattr(self, name).shape[-1:] != (cols,):
                raise ValueError(f"{name} must end in ({cols},), got {tuple(getattr(self, name).shape)}")
        for name in _ROW_FIELDS:
            if getattr(self, name).shape[-1:] != (rows,):
                raise ValueError(f"{name} must end in ({rows},), got {tuple(getattr(self, name).shape)}")
        kernel = self.crosstalk_kernel
        if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"crosstalk_kernel must be 2-D with odd sides, got {tuple(kernel.shape)}")
        object.__setattr__(self, "_derived", {})

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered per ``key`` until a tensor changes in place; never while grads are tracked.

        A layer call derives about twenty small per-ring tensors from the chip; at bank sizes each costs
        as much as a full-size operation, so recomputing them for a fixed chip doubles a small layer's time.
        """
        tensors = [getattr(self, name) for name in TENSOR_FIELDS]
        if any(t.requires_grad for t in tensors) or torch.is_inference_mode_enabled():
            return compute()
        stamp = tuple(t._version for t in tensors)
        entry = self._derived.get(key)  # type: ignore[attr-defined]
        if entry is not None and entry[0] == stamp:
            return entry[1]
        value = compute()
        self._derived[key] = (stamp, value)  # type: ignore[attr-defined]
        return value

    @property
    def rows(self) -> int:
        return self.rest_resonance_nm.shape[-2]

    @property
    def cols(self) -> int:
        return self.rest_resonance_nm.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        """Leading chip-population dimensions ``S`` (empty for a single chip)."""
        return self.rest_resonance_nm.shape[:-2]

    def select(self, index: int) -> MRRChipParams:
        """Chip ``index`` of a population (first batch dimension); the kernel is shared."""
        if not self.batch_shape:
            raise ValueError("select() needs a batch of chips; these parameters describe a single chip")
        return replace(
            self, **{name: t if name == "crosstalk_kernel" else t[index] for name, t in self.tensors().items()}
        )

    @classmethod
    def stack(cls, chips: Sequence[MRRChipParams]) -> MRRChipParams:
        """A population from single chips that share one crosstalk kernel and one set of flags."""
        first = chips[0]
        for chip in chips[1:]:
            if not torch.equal(chip.crosstalk_kernel, first.crosstalk_kernel):
                raise ValueError("chips of one population must share the crosstalk kernel")
            if (chip.drift_nm_per_k, chip.spectral_crosstalk) != (first.drift_nm_per_k, first.spectral_crosstalk):
                raise ValueError("chips of one population must share drift_nm_per_k and spectral_crosstalk")
        stacked = {
            name: torch.stack([getattr(chip, name) for chip in chips])
            for name in TENSOR_FIELDS
            if name != "crosstalk_kernel"
        }
        return replace(first, **stacked)


# -- elementary physics -------------------------------------------------------------------------------


def heater_power_mw(volts: Tensor, resistance_ohm: Tensor) -> Tensor:
    """Electrical heater power ``P = V²/R`` in mW (V in volts, R in ohms)."""
    return volts.square() * 1e3 / resistance_ohm


def thermal_kernel(
    horizontal: float, vertical: float, diagonal: float, decay: float = 0.0, **tensor_options: Any
) -> Tensor:
    """Thermal crosstalk kernel from first-neighbour fractions; second neighbours get ``first × decay``.

    Horizontal neighbours share a row (adjacent WDM channels), vertical ones a column. The second ring
    (Chebyshev distance 2) takes ``decay × horizontal`` on the row, ``decay × vertical`` on the column and
    ``decay × diagonal`` elsewhere. With ``decay == 0`` the kernel is 3×3, which keeps the convolution cheap.
    """
    size = 5 if decay > 0 else 3
    kernel = torch.zeros(size, size, **tensor_options)
    mid = size // 2
    for dy in range(-mid, mid + 1):
        for dx in range(-mid, mid + 1):
            reach = max(abs(dy), abs(dx))
            if reach == 0:
                value = 1.0
            elif dy == 0:
                value = horizontal
            elif dx == 0:
                value = vertical
            else:
                value = diagonal
            kernel[mid + dy, mid + dx] = value * (decay if reach == 2 else 1.0)
    return kernel


_BANDED_MAX_SIDE = 16
_BANDED_MAX_RINGS = 1 << 14
"""Ring maps up to this side and size use banded matmuls for the crosstalk; larger ones a depthwise ``conv2d``.

On a CPU a ``conv2d`` call carries ~100 µs of fixed overhead, more than a whole small layer; the banded
form has none but costs ``kh·C`` multiply-adds per ring against ``kh·kw`` and moves ``kh`` times the data.
"""


@functools.cache
def _band_basis(cols: int, kernel_rows: int, kernel_cols: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """0/1 map ``(kh·kw, kh·C·C)`` from a flattened kernel to its stacked row-Toeplitz blocks ``(kh·C, C)``.

    Block ``dy`` maps a row of powers to its heat contribution ``Σ_dx K[dy, dx]·P[c + dx − kw//2]``;
    building the blocks as one matmul keeps them differentiable in the kernel.
    """
    mid = kernel_cols // 2
    basis = torch.zeros(kernel_rows, kernel_cols, kernel_rows, cols, cols, device=device, dtype=dtype)
    for dy in range(kernel_rows):
        for source in range(cols):
            for target in range(cols):
                dx = source - target + mid
                if 0 <= dx < kernel_cols:
                    basis[dy, dx, dy, source, target] = 1.0
    return basis.reshape(kernel_rows * kernel_cols, kernel_rows * cols * cols)


def _band_blocks(kernel: Tensor, cols: int) -> Tensor:
    """Stacked row-Toeplitz blocks ``(kh·C, C)`` of ``kernel`` for the banded crosstalk."""
    kh, kw = kernel.shape
    return (kernel.reshape(1, -1) @ _band_basis(cols, kh, kw, kernel.device, kernel.dtype)).view(kh * cols, cols)


def _uses_blocks(maps: Tensor) -> bool:
    """Whether :func:`_crosstalk_grid` takes the banded route for ring maps ``(..., R, T, C)``."""
    return max(maps.shape[-3], maps.shape[-1]) <= _BANDED_MAX_SIDE and maps.numel() <= _BANDED_MAX_RINGS


def _crosstalk_grid(maps: Tensor, kernel: Tensor, blocks: Tensor | None = None, adjoint: bool = False) -> Tensor:
    """Heat each ring sees, for power maps laid out ``(..., R, T, C)`` (``T`` independent tiles per row).

    The power map of each tile is correlated with ``kernel``, zero past the tile's edge: a 2-D
    convolution, never a dense (R·C)×(R·C) coupling matrix. Small maps run it as one matmul of the row
    windows with banded row-Toeplitz ``blocks`` (built from the kernel unless given), larger ones as a
    depthwise ``conv2d`` (see ``_BANDED_MAX_SIDE``). ``adjoint`` applies the transposed operator, which for a
    same-size correlation with an odd kernel is the correlation with the flipped kernel (``blocks`` then
    belong to the flipped kernel).
    """
    *lead, rows, tiles, cols = maps.shape
    kh, kw = kernel.shape
    use_blocks = _uses_blocks(maps)
    if blocks is not None and blocks.dtype != maps.dtype:
        blocks = None
    if adjoint and not (use_blocks and blocks is not None):
        kernel = kernel.flip(0, 1)
    if not use_blocks:
        kernel = kernel.to(maps.dtype)
        # Every tile of every map is one channel of a single image: one grouped convolution, no per-image overhead.
        planes = maps.movedim(-2, -3).reshape(1, -1, rows, cols)
        weight = kernel.view(1, 1, kh, kw).expand(planes.shape[1], 1, kh, kw)
        heated = F.conv2d(planes, weight, padding=(kh // 2, kw // 2), groups=planes.shape[1])
        return heated.view(*lead, tiles, rows, cols).movedim(-3, -2)
    blocks = _band_blocks(kernel.to(maps.dtype), cols) if blocks is None else blocks
    padded = F.pad(maps.reshape(-1, rows, tiles, cols), (0, 0, 0, 0, kh // 2, kh // 2))
    # Row window of ring (r, c): rows r − kh//2 … r + kh//2 of its tile, each row filtered by its own block.
    windows = padded.unfold(1, kh, 1).transpose(-1, -2).reshape(-1, kh * cols)  # (M·R·T, kh·C)
    return (windows @ blocks).view(*lead, rows, tiles, cols)


def _crosstalk(power_mw: Tensor, kernel: Tensor) -> Tensor:
    """Heat each ring sees for power maps ``(..., R, C)``: :func:`_crosstalk_grid` with one tile."""
    return _crosstalk_grid(power_mw.unsqueeze(-2), kernel).squeeze(-2)


def resonance_from_power_nm(params: MRRChipParams, power_mw: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """``λ_res = rest + η·(K ⊛ P) + drift·ΔT`` for heater powers ``P`` (mW) on the ring grid."""
    heat = _crosstalk(power_mw, params.crosstalk_kernel)
    return params.rest_resonance_nm + params.efficiency_nm_per_mw * heat + params.drift_nm_per_k * delta_t_k


def resonance_nm(params: MRRChipParams, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Resonance wavelength of every ring (nm) for heater voltages ``(..., R, C)``."""
    return resonance_from_power_nm(params, heater_power_mw(heater_volts, params.heater_resistance_ohm), delta_t_k)


def drop_transmission(detuning_nm: Tensor, fwhm_nm: Tensor, depth: Tensor | float) -> Tensor:
    """Lorentzian drop-port transmission ``T_d = D / (1 + (2δ/FWHM)²)``: ``D`` on resonance, ``D/2`` at ±FWHM/2."""
    return depth / (1 + (2 * detuning_nm / fwhm_nm).square())


def sat_reduced_weight(x: Tensor, gamma: float = 0.15) -> Tensor:
    """The SAT paper's reduced MRR model ``w = 1 − 2/(1 + (x/γ)²)`` (Xu et al., arXiv 2411.12352).

    It is the special case of :func:`bank_weights` without heaters, crosstalk or noise, with the
    opposite sign convention: ``x = λ_res − λ_c = −δ``, ``γ = FWHM/2``, ``D = 1``, and its weight is
    through minus drop, so ``sat_reduced_weight(−δ, FWHM/2) == −w``. Its drift rule ``x → x + 0.08·ΔT``
    is the same red shift as ``drift_nm_per_k·ΔT`` here. Kept for comparing with the paper's numbers.
    """
    return 1 - 2 / (1 + (x / gamma).square())


# -- weights ------------------------------------------------------------------------------------------

_NodeInputs = tuple[Any, ...]
"""``(drive, power_gain, kernel, coupling, detune, amplitude, offset, blocks, flipped_blocks, layout)``.

See :class:`_LorentzWeights`.
"""


def _lorentz_parts(
    drive: Tensor, power_gain: Tensor | None, kernel: Tensor, coupling: Tensor, detune: Tensor, blocks: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Heater power, heat, ``u = 2δ/FWHM``, ``L = 1/(1 + u²)`` and ``½·dP/dV`` (volts drive only), for every pass."""
    half_slope = None if power_gain is None else drive * power_gain
    power = drive if half_slope is None else half_slope * drive
    heat = _crosstalk_grid(power, kernel, blocks)
    u = torch.addcmul(detune, coupling, heat, value=-1)
    return power, heat, u, torch.addcmul(u.new_ones(()), u, u).reciprocal_(), half_slope


def _on_grid(inputs: _NodeInputs) -> _NodeInputs:
    """The node inputs with the drive on the ring grid (a logical ``(out, in)`` drive padded to whole tiles)."""
    layout = inputs[9]
    return inputs if layout is None else (_logical_grid(inputs[0], *layout), *inputs[1:])


def _off_grid(inputs: _NodeInputs, tensor: Tensor) -> Tensor:
    """A drive-shaped grid tensor back in the drive's own layout."""
    return tensor if inputs[9] is None else _logical(tensor, *inputs[0].shape[-2:])


def _parts_of(grid_inputs: _NodeInputs) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    drive, power_gain, kernel, coupling, detune, _, _, blocks, _, _ = grid_inputs
    return _lorentz_parts(drive, power_gain, kernel, coupling, detune, blocks)


def _lorentz_grads(
    grid_inputs: _NodeInputs,
    parts: tuple[Tensor | None, ...],
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
            grads[2] = _kernel_grad(power, g_heat, kernel.shape) * (0.5 if doubled else 1.0)
        g_power = _crosstalk_grid(g_heat, kernel, flipped_blocks, adjoint=True)
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
    t_heat = None if t_power is None else _crosstalk_grid(t_power, kernel, blocks)
    if t_kernel is not None:
        t_heat = _add(t_heat, _crosstalk_grid(power, t_kernel))
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


def _add(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    """``grad`` reduced over the dimensions ``like`` was broadcast along."""
    return _sum_to_shape(grad, like.shape)


def _sum_to_shape(grad: Tensor, shape: torch.Size) -> Tensor:
    return grad if grad.shape == shape else grad.sum_to_size(shape)


def _node_backward(
    inputs: _NodeInputs, parts: tuple[Tensor | None, ...] | None, grad: Tensor, needs: tuple[bool, ...]
) -> tuple[Tensor | None, ...]:
    """Shared backward of both node classes; ``parts`` None means recompute them (differentiably)."""
    layout = inputs[9]
    if parts is None or needs[1]:
        grid_inputs = _on_grid(inputs)
        drive_shape = grid_inputs[0].shape
    else:  # the saved intermediates suffice; spare tiling the drive again
        grid_inputs = (None, *inputs[1:])
        drive_shape = inputs[0].shape if layout is None else _logical_grid_shape(inputs[0].shape, *layout)
    if layout is not None:
        grad = _logical_grid(grad, *layout)
    parts = _parts_of(grid_inputs) if parts is None else parts
    grads = _lorentz_grads(grid_inputs, parts, grad, needs, drive_shape)
    if grads[0] is not None:
        grads[0] = _off_grid(inputs, grads[0])
    return tuple(grads)


def _node_tangent(inputs: _NodeInputs, tangents: tuple[Tensor | None, ...]) -> Tensor:
    grid_inputs = _on_grid(inputs)
    t_drive = tangents[0]
    if t_drive is not None and inputs[9] is not None:
        t_drive = _logical_grid(t_drive, *inputs[9])
    return _off_grid(inputs, _lorentz_tangent(grid_inputs, (t_drive, *tangents[1:])))


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
    ``blocks``/``flipped_blocks`` are prebuilt banded crosstalk blocks of the kernel and its flip, or None.
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
        ctx.save_for_backward(*inputs[:9], *parts)  # every input but the layout is a tensor or None
        ctx.save_for_forward(*inputs[:9])
        ctx.layout = inputs[9]
        return _off_grid(inputs, torch.addcmul(inputs[6], inputs[5], parts[3]))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        inputs = (*saved[:9], ctx.layout)
        parts = None if torch.is_grad_enabled() else saved[9:]
        return _node_backward(inputs, parts, grad, ctx.needs_input_grad)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor:
        return _node_tangent((*ctx.saved_tensors[:9], ctx.layout), tangents)


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
        ctx.save_for_backward(*inputs[:9])
        ctx.save_for_forward(*inputs[:9])
        ctx.layout = inputs[9]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return _node_backward((*ctx.saved_tensors, ctx.layout), None, grad, ctx.needs_input_grad)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor:
        return _node_tangent((*ctx.saved_tensors, ctx.layout), tangents)


def _functorch_active() -> bool:
    """Whether a ``torch.func`` transform is running (the test ``Function.apply`` itself makes)."""
    probe = getattr(torch._C, "_are_functorch_transforms_active", None)
    return True if probe is None else bool(probe())


def _lorentz_weights(*inputs: Any) -> Tensor:
    """The fused node; the transform-ready variant only where a ``torch.func`` transform needs it."""
    if _functorch_active():
        return _TransformableLorentzWeights.apply(*inputs)
    return _LorentzWeights.apply(*inputs)


def _kernel_grad(power: Tensor, g_heat: Tensor, kernel_shape: torch.Size) -> Tensor:
    """d(loss)/d(kernel) of :func:`_crosstalk_grid`: the correlation of the power maps with the heat gradient."""
    kh, kw = kernel_shape
    rows, cols = power.shape[-3], power.shape[-1]
    return torch.nn.grad.conv2d_weight(
        power.movedim(-2, -3).reshape(-1, 1, rows, cols),
        (1, 1, kh, kw),
        g_heat.movedim(-2, -3).reshape(-1, 1, rows, cols),
        padding=(kh // 2, kw // 2),
    ).view(kh, kw)


class _GridView:
    """Per-chip tensors viewed for ring maps laid out ``(*S, [tr,] R, T, C)``.

    ``T`` (tile columns) sits between rows and channels so that a logical ``(out, in)`` matrix padded to
    whole tiles *is* this layout, ``(tr, R, tc, C)``: the weights reach the layer's matmul without a copy.
    With ``tiled`` and a chip population, a unit dimension for the tile rows ``tr`` follows ``S``.
    """

    def __init__(self, params: MRRChipParams, tiled: bool) -> None:
        self._extra = (1,) if tiled and params.batch_shape else ()

    def ring(self, t: Tensor) -> Tensor:
        """``(*S, R, C) -> (*S, [1,] R, 1, C)``."""
        return t.reshape(*t.shape[:-2], *self._extra, t.shape[-2], 1, t.shape[-1])

    def channel(self, t: Tensor) -> Tensor:
        """``(*S, C) -> (*S, [1,] 1, 1, C)``."""
        return t.reshape(*t.shape[:-1], *self._extra, 1, 1, t.shape[-1])

    def row(self, t: Tensor) -> Tensor:
        """``(*S, R) -> (*S, [1,] R, 1, 1)``."""
        return t.reshape(*t.shape[:-1], *self._extra, t.shape[-1], 1, 1)

    def temperature(self, delta_t_k: TemperatureShift) -> TemperatureShift:
        """A ΔT tensor shaped like a ring field ``(..., R|1, C|1)`` lifted onto the grid; scalars, per-channel as is."""
        if isinstance(delta_t_k, Tensor) and delta_t_k.dim() >= 2:
            return self.ring(delta_t_k)
        return delta_t_k


class _Constants(NamedTuple):
    """The fused node's per-ring inputs for a chip, on the grid layout (see :class:`_LorentzWeights`)."""

    power_gain: Tensor
    coupling: Tensor
    detune: Tensor
    inv_halfwidth: Tensor
    amplitude: Tensor
    offset: Tensor
    blocks: Tensor | None
    flipped_blocks: Tensor | None


def _constants(params: MRRChipParams, tiled: bool, readout: bool) -> _Constants:
    grid = _GridView(params, tiled)
    inv_halfwidth = grid.ring(2 / params.fwhm_nm)
    amplitude = grid.ring(2 * params.drop_depth)
    scale = torch.ones((), dtype=amplitude.dtype, device=amplitude.device)
    if readout:
        scale = grid.row(params.readout_volts_per_mw) * grid.channel(params.input_power_mw)
        amplitude = amplitude * scale
    blocks = flipped = None
    if max(params.rows, params.cols) <= _BANDED_MAX_SIDE:
        blocks = _band_blocks(params.crosstalk_kernel, params.cols)
        flipped = _band_blocks(params.crosstalk_kernel.flip(0, 1), params.cols)
    return _Constants(
        power_gain=grid.ring(1e3 / params.heater_resistance_ohm),
        coupling=grid.ring(params.efficiency_nm_per_mw) * inv_halfwidth,
        detune=grid.ring(params.channel_wavelength_nm.unsqueeze(-2) - params.rest_resonance_nm) * inv_halfwidth,
        inv_halfwidth=inv_halfwidth,
        amplitude=amplitude,
        offset=-scale,
        blocks=blocks,
        flipped_blocks=flipped,
    )


def _grid_weights(
    params: MRRChipParams,
    drive: Tensor,
    delta_t_k: TemperatureShift,
    *,
    volts: bool,
    layout: tuple[int, int] | None = None,
    readout: bool = False,
) -> Tensor:
    """Ring weights for a heater drive (volts or mW) on the ring grid ``(..., R, T, C)``.

    With ``layout = (R, C)`` the drive is a logical ``(..., out, in)`` matrix tiled over the bank, and the
    weights come back in that layout. ``readout`` scales ring ``(r, c)`` by ``g_r·P_in[c]``, its
    contribution in detector volts per unit input.
    """
    grid = _GridView(params, tiled=layout is not None)
    temperature = grid.temperature(delta_t_k)
    if params.spectral_crosstalk:
        on_grid = drive if layout is None else _logical_grid(drive, *layout)
        power = heater_power_mw(on_grid, grid.ring(params.heater_resistance_ohm)) if volts else on_grid
        heat = _crosstalk_grid(power, params.crosstalk_kernel)
        resonance = grid.ring(params.rest_resonance_nm) + grid.ring(params.efficiency_nm_per_mw) * heat
        resonance = resonance + params.drift_nm_per_k * temperature
        channels = grid.channel(params.channel_wavelength_nm)
        weights = _spectral_weights(channels, resonance, grid.ring(params.fwhm_nm), grid.ring(params.drop_depth))
        if readout:
            weights = weights * grid.row(params.readout_volts_per_mw) * grid.channel(params.input_power_mw)
        return weights if layout is None else _logical(weights, *drive.shape[-2:])
    key = ("grid", layout is not None, readout)
    constants: _Constants = params._cached(key, lambda: _constants(params, layout is not None, readout))
    detune = constants.detune
    if isinstance(temperature, Tensor) or temperature != 0:
        detune = detune - (params.drift_nm_per_k * temperature) * constants.inv_halfwidth
    return _lorentz_weights(
        drive,
        constants.power_gain if volts else None,
        params.crosstalk_kernel,
        constants.coupling,
        detune,
        constants.amplitude,
        constants.offset,
        constants.blocks,
        constants.flipped_blocks,
        layout,
    )


def _spectral_weights(channels: Tensor, resonance: Tensor, fwhm: Tensor, depth: Tensor) -> Tensor:
    """Weights when every ring of a row filters every channel on the shared bus.

    Channel ``c`` passes all rings of its row in series, so the through port keeps
    ``Π_j (1 − T_d(λ_c − λ_res[r, j]))`` and (lossless) the drop port collects the rest:
    ``w = 1 − 2·Π_j (1 − T_d)``. With only ring ``j = c`` near channel ``c`` this is ``2·T_d − 1``, the
    weight without spectral crosstalk. First order: light dropped by one ring is not re-filtered by the
    other rings on the drop bus. Costs ``C`` times more than the diagonal model (plain autograd).
    """
    detuning = channels.unsqueeze(-2) - resonance.unsqueeze(-1)  # (..., R, T, j, c)
    dropped = drop_transmission(detuning, fwhm.unsqueeze(-1), depth.unsqueeze(-1))
    return 1 - 2 * torch.prod(1 - dropped, dim=-2)


def weights_from_power(params: MRRChipParams, power_mw: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Ring weights ``(..., R, C)`` for heater powers in mW (the simulator's heaters settle in power)."""
    return _grid_weights(params, power_mw.unsqueeze(-2), delta_t_k, volts=False).squeeze(-2)


def bank_weights(params: MRRChipParams, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Ring weights ``w = T_d − T_t = 2·T_d − 1 ∈ [−1, 1]`` for heater voltages ``(..., R, C)``.

    ``T_d`` is the Lorentzian drop of ring ``(r, c)`` at detuning ``δ = λ_c − λ_res``, ``T_t = 1 − T_d``.
    With ``params.spectral_crosstalk`` the other rings of the row filter channel ``c`` too.
    """
    return _grid_weights(params, heater_volts.unsqueeze(-2), delta_t_k, volts=True).squeeze(-2)


# -- inputs and readout -------------------------------------------------------------------------------


def _per_sample(channel_values: Tensor, params: MRRChipParams) -> Tensor:
    """Per-channel values of a chip population, lifted over the sample axis: ``(*S, C) -> (*S, 1, C)``."""
    return channel_values.unsqueeze(-2) if params.batch_shape else channel_values


def modulator_power_mw(params: MRRChipParams, mod_volts: Tensor) -> Tensor:
    """Optical power per channel ``P_in·sin²(πV/(2·V_π))`` for modulator drives ``(B, C)``."""
    v_pi = _per_sample(params.modulator_v_pi, params)
    return _per_sample(params.input_power_mw, params) * torch.sin(mod_volts * (math.pi / 2) / v_pi).square()


def modulator_volts_for(params: MRRChipParams, x: Tensor) -> Tensor:
    """Drive that passes fraction ``x`` ∈ [0, 1] of ``P_in`` (inverse of :func:`modulator_power_mw`).

    For programming a modulator, not for a training graph: d/dx of ``asin(√x)`` is infinite at 0 and 1.
    """
    v_pi = _per_sample(params.modulator_v_pi, params)
    return (2 / math.pi) * v_pi * torch.asin(x.clamp(0.0, 1.0).sqrt())


def balanced_readout(params: MRRChipParams, weights: Tensor, power_mw: Tensor) -> Tensor:
    """Noiseless detector volts ``(..., B, R)``: ``g_r·Σ_c w[r, c]·P[b, c] + offset_r``.

    The balanced pair subtracts through from drop photocurrent, so channel ``c`` contributes
    ``(T_d − T_t)·P_c = w·P_c``; ``g_r`` (V/mW) lumps responsivity, TIA gain and this row's gain error.
    """
    scaled = weights * params.readout_volts_per_mw.unsqueeze(-1)
    if scaled.dim() == 2 and power_mw.dim() == 2:
        return F.linear(power_mw, scaled, params.readout_offset_v)
    return power_mw @ scaled.mT + params.readout_offset_v.unsqueeze(-2)


# -- tiling: logical layers larger than the bank ------------------------------------------------------


def to_tiles(matrix: Tensor, rows: int, cols: int) -> Tensor:
    """``(..., out, in) -> (..., tr, tc, rows, cols)``, zero-padded to whole tiles.

    Zero is what the System writes to the unused rings of a partial tile (their safe heater value);
    the padding matters because those rings still heat their neighbours.
    """
    return _logical_grid(matrix, rows, cols).transpose(-3, -2)


def from_tiles(tiles: Tensor, out_features: int, in_features: int) -> Tensor:
    """Inverse of :func:`to_tiles`: ``(..., tr, tc, rows, cols) -> (..., out, in)``, padding dropped."""
    return _logical(tiles.transpose(-3, -2), out_features, in_features)


def _logical_grid_shape(shape: torch.Size, rows: int, cols: int) -> torch.Size:
    """Shape of :func:`_logical_grid` for a logical matrix of ``shape``."""
    *lead, out_features, in_features = shape
    return torch.Size((*lead, -(-out_features // rows), rows, -(-in_features // cols), cols))


def _logical_grid(controls: Tensor, rows: int, cols: int) -> Tensor:
    """``(..., out, in)`` zero-padded to whole tiles and viewed as ``(..., tr, R, tc, C)`` (see :class:`_GridView`)."""
    out_features, in_features = controls.shape[-2:]
    grid_shape = _logical_grid_shape(controls.shape, rows, cols)
    pad_rows, pad_cols = grid_shape[-4] * rows - out_features, grid_shape[-2] * cols - in_features
    padded = F.pad(controls, (0, pad_cols, 0, pad_rows)) if pad_cols or pad_rows else controls
    return padded.reshape(grid_shape)


def _logical(weights: Tensor, out_features: int, in_features: int) -> Tensor:
    """Grid-layout weights ``(..., tr, R, tc, C)`` back to the logical ``(..., out, in)``, padding dropped."""
    *lead, tile_rows, rows, tile_cols, cols = weights.shape
    whole = weights.reshape(*lead, tile_rows * rows, tile_cols * cols)
    if (tile_rows * rows, tile_cols * cols) == (out_features, in_features):
        return whole
    return whole[..., :out_features, :in_features]


def logical_weights(params: MRRChipParams, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Weights ``(*S, out, in)`` of a logical layer whose heater controls ``(out, in)`` are tiled over one chip.

    Every tile is programmed on the same physical bank in turn (time multiplexing), so every tile sees
    the same rings: tile ``(i, j)`` element ``(r, c)`` is ring ``(r, c)``; unused rings of a partial tile
    are at 0 V (see :func:`to_tiles`).
    """
    return _grid_weights(params, controls, delta_t_k, volts=True, layout=(params.rows, params.cols))


def logical_readout(params: MRRChipParams, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Detector volts ``(*S, B, out)`` for inputs ``x`` ∈ [0, 1] ``(B, in)``, summed over column tiles.

    This is the whole optical path of a time-multiplexed layer: heater power, thermal crosstalk,
    Lorentzian weights, the modulators (fraction ``x`` of ``P_in``, as the System programs them),
    balanced detection with per-row gain, one dark offset per column tile.
    """
    out_features, in_features = controls.shape[-2:]
    weights = _grid_weights(params, controls, delta_t_k, volts=True, layout=(params.rows, params.cols), readout=True)
    tile_rows, tile_cols = -(-out_features // params.rows), -(-in_features // params.cols)

    def dark_offset() -> Tensor:
        offset = params.readout_offset_v * tile_cols
        return offset.repeat(*([1] * (offset.dim() - 1)), tile_rows)[..., :out_features]

    offset = params._cached(("offset", tile_rows, tile_cols, out_features), dark_offset)
    if weights.dim() == 2:
        return F.linear(x, weights, offset)
    return x @ weights.mT + offset.unsqueeze(-2)


# -- module -------------------------------------------------------------------------------------------


class MRRBankModel(nn.Module):
    """An MRR bank as a torch module: ground truth inside the simulator, fitted parameters in a twin.

    Fields named in ``trainable`` become :class:`~torch.nn.Parameter` copies (what calibration fits);
    the rest are buffers that share storage with ``params``.
    """

    def __init__(self, params: MRRChipParams, trainable: Iterable[str] = ()) -> None:
        super().__init__()
        register_chip_tensors(self, params, trainable)
        self.drift_nm_per_k = params.drift_nm_per_k
        self.spectral_crosstalk = params.spectral_crosstalk
        self._held_params: tuple[tuple[Tensor, ...], MRRChipParams] | None = None

    @property
    def params(self) -> MRRChipParams:
        """The module's present parameters (after ``.to()`` or a fitting step).

        Kept while the module holds the same tensors, so that its derived constants stay cached.
        """
        tensors = tuple(getattr(self, name) for name in TENSOR_FIELDS)
        held = self._held_params
        if held is None or any(a is not b for a, b in zip(held[0], tensors, strict=True)):
            fields = dict(zip(TENSOR_FIELDS, tensors, strict=True))
            params = MRRChipParams(
                **fields, drift_nm_per_k=self.drift_nm_per_k, spectral_crosstalk=self.spectral_crosstalk
            )
            held = self._held_params = (tensors, params)
        return held[1]

    def weights(self, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Ring weights ``(*S, R, C)`` for heater voltages ``(R, C)``."""
        return bank_weights(self.params, heater_volts, delta_t_k)

    def forward(self, x: Tensor, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Noiseless detector volts ``(*S, B, R)`` for input fractions ``x`` ``(B, C)`` on the bank."""
        params = self.params
        if heater_volts.shape[-2:] != (params.rows, params.cols):
            raise ValueError(
                f"heater_volts must end in ({params.rows}, {params.cols}); use readout() for larger layers"
            )
        power = x * _per_sample(params.input_power_mw, params)
        return balanced_readout(params, bank_weights(params, heater_volts, delta_t_k), power)

    def layer(self, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Logical layer ``(B, in) -> (*S, B, out)``: ``Σ_c w·x`` with controls ``(out, in)`` tiled over the bank."""
        weights = logical_weights(self.params, controls, delta_t_k)
        return F.linear(x, weights) if weights.dim() == 2 else x @ weights.mT

    def readout(self, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Detector volts of a tiled logical layer, summed over column tiles (see :func:`logical_readout`)."""
        return logical_readout(self.params, x, controls, delta_t_k)
