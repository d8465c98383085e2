"""Rectangular (Clements) MZI mesh: differentiable physics shared by the simulator and the twin.

A mesh on ``N`` modes has ``N`` columns of Mach–Zehnder interferometers; column ``l`` couples the mode
pairs ``(k, k+1)`` for ``k = l mod 2, l mod 2 + 2, …``, which gives ``N(N−1)/2`` MZIs, enough to realise
any unitary up to output phases (Clements et al., Optica 2016). MZIs are numbered column by column,
top to bottom.

Each MZI is ``M = B(ε₂)·diag(e^{iθ}, 1)·B(ε₁)·diag(e^{iφ}, 1)``: an external phase ``φ`` on its upper
input, a coupler, an internal phase ``θ`` on the upper arm, a second coupler. A coupler with power
split error ``ε`` sends ``(1+ε)/2`` of the power straight through and ``(1−ε)/2`` across:
``B = [[t, i r], [i r, t]]``, ``t = √((1+ε)/2)``, ``r = √((1−ε)/2)`` (the form of the SAT paper's device A).
Beyond ``|ε| = 1`` that square root is of a negative number, which is how the reference code turned
σ_bs ≥ 0.25 into NaN; here ``ε`` is clipped to ``±MAX_SPLIT_ERROR`` first, a coupler that is almost but
not quite all-bar or all-cross, where the gradient stays finite.

Phases come from heater powers: ``phase = π·P/P_π + offset`` with ``P = V²/R``. The offset is the
MZI's fabrication phase error (σ_ph); ``P_π`` ≈ 25 mW for TiN heaters without undercut. Heater ``2k``
drives MZI ``k``'s θ, heater ``2k+1`` its φ.

A layer maps non-negative input *amplitudes* ``x`` (B, N) (what the input modulators set; the power
in mode ``j`` is ``x_j²``) to output intensities ``|U x|²`` (B, N), in units of the full power of one
input: a lossless mesh conserves ``Σ x²``.

Per-chip tensors may carry leading population dimensions ``S`` (Monte-Carlo chips): ``(*S, M)`` per
MZI; sample batches then come out ``(*S, B, N)``.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from labsat.physics.chip import ChipTensors, register_chip_tensors
from labsat.physics.mrr import heater_power_mw

MAX_SPLIT_ERROR = 0.99
"""Largest coupler split error |ε| used: a 99.5 : 0.5 coupler, still short of the √0 whose slope is infinite."""

TENSOR_FIELDS = (
    "theta_offset",
    "phi_offset",
    "split_in",
    "split_out",
    "p_pi_mw",
    "heater_resistance_ohm",
)
"""Names of the tensor fields of :class:`MZIChipParams` (the fittable quantities of a twin)."""


def mzi_count(modes: int) -> int:
    """``N(N−1)/2``: MZIs in a rectangular mesh on ``modes`` modes."""
    return modes * (modes - 1) // 2


def modes_for_heaters(heaters: int) -> int:
    """Mesh size ``N`` whose ``N(N−1)`` heaters number ``heaters``; ValueError if there is none."""
    modes = round((1 + math.sqrt(1 + 4 * heaters)) / 2)
    if modes * (modes - 1) != heaters:
        raise ValueError(f"{heaters} heaters are not N(N−1) for any mesh size N")
    return modes


@functools.cache
def columns(modes: int) -> tuple[tuple[int, int, int], ...]:
    """Per mesh column ``(first MZI, number of MZIs, first mode)``: the rectangular layout."""
    layout = []
    first = 0
    for column in range(modes):
        top = column % 2
        count = (modes - top) // 2
        layout.append((first, count, top))
        first += count
    return tuple(layout)


@dataclass(frozen=True, kw_only=True, eq=False)
class MZIChipParams(ChipTensors):
    """Everything that distinguishes one MZI mesh chip from another; all fields are ``(*S, M)``.

    ``theta_offset``/``phi_offset`` are the phases (rad) with the heaters off: fabrication phase errors.
    ``split_in``/``split_out`` are the two couplers' split errors ε (clipped where used, not here, so a
    fitted twin keeps a gradient). Frozen: use :func:`dataclasses.replace` for a changed chip.
    """

    FIELDS: ClassVar[tuple[str, ...]] = TENSOR_FIELDS

    theta_offset: Tensor
    phi_offset: Tensor
    split_in: Tensor
    split_out: Tensor
    p_pi_mw: Tensor
    heater_resistance_ohm: Tensor

    def __post_init__(self) -> None:
        count = self.theta_offset.shape[-1]
        modes_for_heaters(2 * count)  # raises unless count is N(N−1)/2
        for name in TENSOR_FIELDS:
            if getattr(self, name).shape[-1] != count:
                raise ValueError(f"{name} must end in ({count},), got {tuple(getattr(self, name).shape)}")

    @property
    def mzis(self) -> int:
        return self.theta_offset.shape[-1]

    @property
    def modes(self) -> int:
        return modes_for_heaters(2 * self.mzis)

    @property
    def batch_shape(self) -> torch.Size:
        """Leading chip-population dimensions ``S`` (empty for a single chip)."""
        return self.theta_offset.shape[:-1]

    @classmethod
    def nominal(
        cls,
        modes: int,
        p_pi_mw: float = 25.0,
        heater_resistance_ohm: float = 1000.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> MZIChipParams:
        """The design: 50:50 couplers, no phase errors, every heater at its nominal ``P_π`` and resistance."""
        zeros = torch.zeros(mzi_count(modes), dtype=dtype, device=device)
        return cls(
            theta_offset=zeros,
            phi_offset=zeros,
            split_in=zeros,
            split_out=zeros,
            p_pi_mw=torch.full_like(zeros, p_pi_mw),
            heater_resistance_ohm=torch.full_like(zeros, heater_resistance_ohm),
        )


# -- elementary physics -------------------------------------------------------------------------------


def phase_shifts(params: MZIChipParams, heater_volts: Tensor) -> Tensor:
    """The heaters' phase shifts ``π·P/P_π`` (rad), ``(*S, 2M)`` interleaved like the channels (θ, φ per MZI)."""
    volts = heater_volts.unflatten(-1, (params.mzis, 2))
    power = heater_power_mw(volts, params.heater_resistance_ohm.unsqueeze(-1))
    return (math.pi * power / params.p_pi_mw.unsqueeze(-1)).flatten(-2)


def mzi_matrices(theta: Tensor, phi: Tensor, split_in: Tensor, split_out: Tensor) -> Tensor:
    """Complex 2×2 transfer matrices ``(..., M, 2, 2)`` of ``B(ε₂)·diag(e^{iθ},1)·B(ε₁)·diag(e^{iφ},1)``.

    Written out rather than multiplied: ``θ = 0`` is the cross state, ``θ = π`` the bar state (ideal couplers).
    """
    return pair_matrices(torch.stack([theta, phi], -1), split_in, split_out)


def pair_matrices(angles: Tensor, split_in: Tensor, split_out: Tensor) -> Tensor:
    """:func:`mzi_matrices` for phases given as ``(θ, φ)`` pairs ``(..., M, 2)``.

    Every entry has the form ``A·e^{iα} + B·e^{iβ}`` with real coupler products ``A, B`` and phases
    ``α = θ + s·φ + q·π/2``, ``β = s·φ + q·π/2`` (``s ∈ {0, 1}``, ``q ∈ {0, 1, 2}`` per term, ``q = 2`` for
    the minus signs): one ``polar`` over all eight terms instead of a graph per entry, which keeps the mesh a
    few dozen tensor operations at any size. The coupler amplitudes ``t = √((1+ε)/2)``, ``r = √((1−ε)/2)``
    of both factors of all eight products come from one gather of the clipped ε (clipped to
    ±:data:`MAX_SPLIT_ERROR`: never NaN). The magnitudes are therefore positive, as ``polar``'s gradient in
    its magnitude (taken from the result's phase) needs.
    """
    return _matrices_from(angles, _term_magnitudes(split_in, split_out))


def _term_magnitudes(split_in: Tensor, split_out: Tensor) -> Tensor:
    """The eight coupler products ``A, B`` of every MZI ``(..., M, 8)`` (see :func:`pair_matrices`)."""
    which, sign, _, _ = _entry_terms(split_in.dtype, split_in.device)
    eps = torch.stack([split_in, split_out], -1).clamp(-MAX_SPLIT_ERROR, MAX_SPLIT_ERROR)
    amplitudes = torch.addcmul(sign.new_tensor(0.5), eps.index_select(-1, which), sign).sqrt()  # (..., M, 16)
    return amplitudes[..., :8] * amplitudes[..., 8:]


def _matrices_from(angles: Tensor, magnitudes: Tensor) -> Tensor:
    """The 2×2 matrices for ``(θ, φ)`` pairs ``(..., M, 2)`` and coupler products ``(..., M, 8)``."""
    _, _, mix, bias = _entry_terms(angles.dtype, angles.device)
    terms = torch.polar(magnitudes, torch.addmm(bias, angles.reshape(-1, 2), mix).view(*angles.shape[:-1], 8))
    return (terms[..., :4] + terms[..., 4:]).unflatten(-1, (2, 2))


@functools.cache
def _entry_terms(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Constants of :func:`pair_matrices`: each term's two coupler amplitudes and its phase.

    Terms ``0–3`` are the ``A·e^{iα}`` of ``m00, m01, m10, m11``, terms ``4–7`` their ``B·e^{iβ}``, with
    ``A = [t1t2, r1t2, t1r2, −r1r2]`` and ``B = [−r1r2, t1r2, r1t2, t1t2]``. ``which`` picks ε_in (0) or
    ε_out (1) for the first factors of the eight terms, then for the second; ``sign`` is ``+½`` for a ``t``,
    ``−½`` for an ``r``. ``mix`` maps ``(θ, φ)`` to the eight phases, ``bias`` adds the ``i = e^{iπ/2}``
    of the cross terms and the ``−1 = e^{iπ}`` of the two ``−r1r2`` terms.
    """
    first_is_t = [1, 0, 1, 0, 0, 1, 0, 1]  # t1 or r1 in A = [t1t2, r1t2, t1r2, −r1r2], B = [−r1r2, t1r2, r1t2, t1t2]
    second_is_t = [1, 1, 0, 0, 0, 0, 1, 1]  # t2 or r2
    which = torch.tensor([0] * 8 + [1] * 8, device=device)
    sign = torch.tensor([0.5 if t else -0.5 for t in first_is_t + second_is_t], dtype=dtype, device=device)
    mix = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0, 1, 0]], dtype=dtype, device=device)
    bias = torch.tensor([0, 1, 1, 2, 2, 1, 1, 0], dtype=dtype, device=device) * (math.pi / 2)
    return which, sign, mix, bias


COLUMN_GROUP = 4
"""Columns :func:`mesh_unitary` multiplies out entry by entry before its matmul tree (2^4 paths per row)."""


def mesh_unitary(matrices: Tensor) -> Tensor:
    """The mesh's ``(..., N, N)`` transfer matrix from its MZIs' 2×2 matrices ``(..., M, 2, 2)``.

    The unitary is the product ``C_{L−1}···C_1·C_0`` of the columns' block-diagonal matrices. In the
    product of :data:`COLUMN_GROUP` consecutive columns, entry ``(r, c)`` is a sum over the paths from input
    mode ``c`` to output mode ``r``, each path a product of one entry per column (an MZI's entry, or 1 on
    the diagonal of a mode the column leaves alone); every row has at most ``2^COLUMN_GROUP`` paths. One
    gather takes every factor of every path, a few products multiply them, one ``index_add`` sums them into
    the groups' dense ``N×N`` matrices (identity columns pad the number of groups to a power of two), and
    a tree of batched matmuls multiplies the groups. A few dozen operations at any ``N``, all
    differentiable (and usable under ``torch.func`` transforms), instead of one sequence per column; the
    gradients of gather and ``index_add`` are a scatter and a gather of the same small size.
    """
    modes = modes_for_heaters(2 * matrices.shape[-3])
    source, target, groups = _path_layout(modes, matrices.device)
    lead = matrices.shape[:-3]
    ext = torch.cat([matrices.flatten(-3), matrices.new_ones(()).expand(*lead, 1)], -1)
    factors = ext.index_select(-1, source).unflatten(-1, (COLUMN_GROUP, -1)).unbind(-2)
    paths = functools.reduce(operator.mul, factors)
    product = matrices.new_zeros(*lead, groups * modes * modes).index_add(-1, target, paths)
    product = product.unflatten(-1, (groups, modes, modes))
    while product.shape[-3] > 1:
        earlier, later = product.unflatten(-3, (-1, 2)).unbind(-3)
        product = later @ earlier
    return product.squeeze(-3)


@functools.cache
def _path_layout(modes: int, device: torch.device) -> tuple[Tensor, Tensor, int]:
    """Path factors and places of :func:`mesh_unitary`'s column groups, and the number of groups ``G``.

    ``source`` holds, for each of the ``COLUMN_GROUP`` columns of a group (last first), the position of
    every path's factor in that column, in the flattened 2×2 matrices followed by a 1 (position ``4M``);
    ``target`` each path's entry in the group products laid out ``(G, N, N)``. ``G`` is a power of two.
    """
    groups = 1 << max(0, math.ceil(math.log2(-(-modes // COLUMN_GROUP))))
    layout = columns(modes)

    def nonzeros(column: int) -> dict[int, list[tuple[int, int]]]:
        """Row → [(column index, source position)] of one mesh column's matrix (identity past the last)."""
        rows = {mode: [(mode, 4 * mzi_count(modes))] for mode in range(modes)}
        if column < modes:
            first, count, top = layout[column]
            for k in range(count):
                row, entry = top + 2 * k, 4 * (first + k)
                rows[row] = [(row, entry), (row + 1, entry + 1)]
                rows[row + 1] = [(row, entry + 2), (row + 1, entry + 3)]
        return rows

    factors: list[list[int]] = [[] for _ in range(COLUMN_GROUP)]
    target: list[int] = []
    for group in range(groups):
        matrices = [nonzeros(group * COLUMN_GROUP + k) for k in reversed(range(COLUMN_GROUP))]
        for row in range(modes):
            walks: list[tuple[int, list[int]]] = [(row, [])]
            for matrix in matrices:
                walks = [(col, [*path, entry]) for mode, path in walks for col, entry in matrix[mode]]
            for col, path in walks:
                for k, entry in enumerate(path):
                    factors[k].append(entry)
                target.append((group * modes + row) * modes + col)
    source = torch.tensor([entry for column in factors for entry in column], device=device)
    return source, torch.tensor(target, device=device), groups


def transfer_matrix(params: MZIChipParams, heater_volts: Tensor) -> Tensor:
    """The chip's unitary (lossless) transfer matrix ``(*S, N, N)`` for heater voltages ``(2M,)``."""
    return unitary_at(params, phase_shifts(params, heater_volts))


def unitary_at(params: MZIChipParams, shifts: Tensor) -> Tensor:
    """The transfer matrix for heater phase shifts ``(2M,)`` (rad): the mesh as phase-space training sees it."""
    magnitudes, offsets = params._cached("mesh terms", lambda: _chip_terms(params))
    return mesh_unitary(_matrices_from(shifts.unflatten(-1, (params.mzis, 2)) + offsets, magnitudes))


def _chip_terms(params: MZIChipParams) -> tuple[Tensor, Tensor]:
    """What :func:`unitary_at` takes from the chip alone: coupler products (*S, M, 8), phase offsets (*S, M, 2).

    Cached per chip (see :meth:`~labsat.physics.chip.ChipTensors._cached`), so a training step on a fixed
    chip spends no operations on them; a twin that fits its couplers or offsets recomputes them every call.
    """
    offsets = torch.stack([params.theta_offset, params.phi_offset], -1)
    return _term_magnitudes(params.split_in, params.split_out), offsets


def output_intensities(unitary: Tensor, amplitudes: Tensor) -> Tensor:
    """``|U x|²`` ``(*S, B, N)`` for real input amplitudes ``x`` ``(B, N)`` (inputs in phase: one laser)."""
    field = amplitudes.to(unitary.dtype) @ unitary.mT
    return field.real.square() + field.imag.square()


def mesh_layer(params: MZIChipParams, amplitudes: Tensor, heater_volts: Tensor) -> Tensor:
    """One mesh layer: ``(B, in ≤ N)`` amplitudes → ``(*S, B, N)`` intensities; unused modes are dark."""
    return mesh_layer_at(params, amplitudes, phase_shifts(params, heater_volts))


def mesh_layer_at(params: MZIChipParams, amplitudes: Tensor, shifts: Tensor) -> Tensor:
    """:func:`mesh_layer` with the heaters given as phase shifts ``(2M,)`` (rad) instead of volts."""
    modes = params.modes
    if amplitudes.shape[-1] < modes:
        amplitudes = torch.nn.functional.pad(amplitudes, (0, modes - amplitudes.shape[-1]))
    return output_intensities(unitary_at(params, shifts), amplitudes)


def volts_for_phase(params: MZIChipParams, phase: Tensor) -> Tensor:
    """Heater voltage that adds ``phase`` (rad, taken mod 2π) to an MZI's phases ``(*S, 2M)``: ``V = √(P·R)``."""
    power = (phase.remainder(2 * math.pi) / math.pi).unflatten(-1, (params.mzis, 2)) * params.p_pi_mw.unsqueeze(-1)
    return (power * params.heater_resistance_ohm.unsqueeze(-1) / 1e3).sqrt().flatten(-2)


# -- module -------------------------------------------------------------------------------------------


class MZIMeshModel(nn.Module):
    """An MZI mesh as a torch module: ground truth in the simulator, fitted (or nominal) parameters in a twin.

    Fields named in ``trainable`` become parameters (what calibration fits); the rest are buffers.
    """

    def __init__(self, params: MZIChipParams, trainable: Iterable[str] = ()) -> None:
        super().__init__()
        register_chip_tensors(self, params, trainable)
        self._held_params: tuple[tuple[Tensor, ...], MZIChipParams] | None = None

    @property
    def params(self) -> MZIChipParams:
        """The module's present parameters (after ``.to()`` or a fitting step).

        Kept while the module holds the same tensors, so that the chip's derived terms stay cached.
        """
        tensors = tuple(getattr(self, name) for name in TENSOR_FIELDS)
        held = self._held_params
        if held is None or any(a is not b for a, b in zip(held[0], tensors, strict=True)):
            held = self._held_params = (tensors, MZIChipParams(**dict(zip(TENSOR_FIELDS, tensors, strict=True))))
        return held[1]

    def layer(self, x: Tensor, controls: Tensor) -> Tensor:
        """Training's layer function: amplitudes ``(B, in ≤ N)``, heater volts ``(2M,)`` → intensities ``(B, N)``."""
        return mesh_layer(self.params, x, controls)

    def phase_layer(self, x: Tensor, shifts: Tensor) -> Tensor:
        """The layer with phase-shift controls ``(2M,)`` (rad): what phase-space training differentiates."""
        return mesh_layer_at(self.params, x, shifts)

    def forward(self, x: Tensor, controls: Tensor) -> Tensor:
        return self.layer(x, controls)
