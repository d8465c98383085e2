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


def phases(params: MZIChipParams, shifts: Tensor) -> tuple[Tensor, Tensor]:
    """``(θ, φ)`` per MZI, ``(*S, M)`` each: the heater shifts ``(..., 2M)`` plus the chip's phase offsets."""
    pairs = shifts.unflatten(-1, (params.mzis, 2))
    return pairs[..., 0] + params.theta_offset, pairs[..., 1] + params.phi_offset


def coupler_amplitudes(split_error: Tensor) -> tuple[Tensor, Tensor]:
    """``(t, r) = (√((1+ε)/2), √((1−ε)/2))`` with ε clipped to ±:data:`MAX_SPLIT_ERROR`: never NaN."""
    eps = split_error.clamp(-MAX_SPLIT_ERROR, MAX_SPLIT_ERROR)
    return ((1 + eps) / 2).sqrt(), ((1 - eps) / 2).sqrt()


def mzi_matrices(theta: Tensor, phi: Tensor, split_in: Tensor, split_out: Tensor) -> Tensor:
    """Complex 2×2 transfer matrices ``(..., M, 2, 2)`` of ``B(ε₂)·diag(e^{iθ},1)·B(ε₁)·diag(e^{iφ},1)``.

    Written out rather than multiplied: ``θ = 0`` is the cross state, ``θ = π`` the bar state (ideal couplers).
    """
    t1, r1 = coupler_amplitudes(split_in)
    t2, r2 = coupler_amplitudes(split_out)
    e_theta = torch.polar(torch.ones_like(theta), theta)
    e_phi = torch.polar(torch.ones_like(phi), phi)
    m00 = e_phi * (t1 * t2 * e_theta - r1 * r2)
    m01 = 1j * (r1 * t2 * e_theta + t1 * r2)
    m10 = 1j * e_phi * (t1 * r2 * e_theta + r1 * t2)
    m11 = t1 * t2 - r1 * r2 * e_theta
    return torch.stack([torch.stack([m00, m01], -1), torch.stack([m10, m11], -1)], -2)


def mesh_unitary(matrices: Tensor) -> Tensor:
    """The mesh's ``(..., N, N)`` transfer matrix from its MZIs' 2×2 matrices ``(..., M, 2, 2)``.

    Column by column, each MZI mixes two rows of the running product; one gather/scatter per column
    keeps it ``N`` small operations, all differentiable.
    """
    modes = modes_for_heaters(2 * matrices.shape[-3])
    lead = matrices.shape[:-3]
    unitary = torch.eye(modes, dtype=matrices.dtype, device=matrices.device).expand(*lead, modes, modes)
    for first, count, top in columns(modes):
        block = matrices[..., first : first + count, :, :]  # (..., m, 2, 2)
        pairs = unitary[..., top : top + 2 * count, :].unflatten(-2, (count, 2))  # (..., m, 2, N)
        mixed = (block @ pairs).flatten(-3, -2)
        unitary = torch.cat([unitary[..., :top, :], mixed, unitary[..., top + 2 * count :, :]], dim=-2)
    return unitary


def transfer_matrix(params: MZIChipParams, heater_volts: Tensor) -> Tensor:
    """The chip's unitary (lossless) transfer matrix ``(*S, N, N)`` for heater voltages ``(2M,)``."""
    return unitary_at(params, phase_shifts(params, heater_volts))


def unitary_at(params: MZIChipParams, shifts: Tensor) -> Tensor:
    """The transfer matrix for heater phase shifts ``(2M,)`` (rad): the mesh as phase-space training sees it."""
    theta, phi = phases(params, shifts)
    return mesh_unitary(mzi_matrices(theta, phi, params.split_in, params.split_out))


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

    @property
    def params(self) -> MZIChipParams:
        return MZIChipParams(**{name: getattr(self, name) for name in TENSOR_FIELDS})

    def layer(self, x: Tensor, controls: Tensor) -> Tensor:
        """Training's layer function: amplitudes ``(B, in ≤ N)``, heater volts ``(2M,)`` → intensities ``(B, N)``."""
        return mesh_layer(self.params, x, controls)

    def phase_layer(self, x: Tensor, shifts: Tensor) -> Tensor:
        """The layer with phase-shift controls ``(2M,)`` (rad): what phase-space training differentiates."""
        return mesh_layer_at(self.params, x, shifts)

    def forward(self, x: Tensor, controls: Tensor) -> Tensor:
        return self.layer(x, controls)
