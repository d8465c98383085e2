"""Heaters and heat: electrical power, thermal crosstalk between rings, the resonance it moves, the drop line."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.physics.mrr.params import MRRChipParams, TemperatureShift


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


COUPLING_MAX_SIDE = 16
COUPLING_MAX_RINGS = 1 << 14
"""Ring maps up to this side and size take the crosstalk as one matmul with the tile's dense coupling matrix;
larger ones a depthwise ``conv2d``.

On a CPU a ``conv2d`` call carries ~100 µs of fixed overhead, more than a whole small layer. The coupling
matrix of a tile of at most 16×16 rings is at most 256×256 (256 KiB in float32): one matmul, with no padding
or window copies, costs ``R·C`` multiply-adds per ring against ``kh·kw``, which at these sizes is cheaper
than the separate tensor operations a windowed form needs.
"""


@functools.cache
def _coupling_basis(
    rows: int, cols: int, kernel_rows: int, kernel_cols: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """0/1 map ``(kh·kw, (R·C)²)`` from a flattened kernel to the tile's coupling matrix ``(R·C, R·C)``.

    Entry ``(source (r, c), target (r', c'))`` takes ``K[r − r' + kh//2, c − c' + kw//2]`` where that is inside
    the kernel, else 0 (zero past the tile's edge); building the matrix as one matmul keeps it differentiable
    in the kernel.
    """
    r, c = torch.arange(rows), torch.arange(cols)
    dy = (r.view(-1, 1, 1, 1) - r.view(1, 1, -1, 1) + kernel_rows // 2).expand(rows, cols, rows, cols).flatten()
    dx = (c.view(1, -1, 1, 1) - c.view(1, 1, 1, -1) + kernel_cols // 2).expand(rows, cols, rows, cols).flatten()
    inside = (dy >= 0) & (dy < kernel_rows) & (dx >= 0) & (dx < kernel_cols)
    basis = torch.zeros(kernel_rows * kernel_cols, dy.numel(), dtype=dtype)
    basis[(dy * kernel_cols + dx)[inside], torch.arange(dy.numel())[inside]] = 1.0
    return basis.to(device)


def coupling_matrix(kernel: Tensor, rows: int, cols: int) -> Tensor:
    """``(R·C, R·C)`` matrix of the crosstalk on one tile: heat (flattened) = power (flattened) @ matrix."""
    kh, kw = kernel.shape
    basis = _coupling_basis(rows, cols, kh, kw, kernel.device, kernel.dtype)
    return (kernel.reshape(1, -1) @ basis).view(rows * cols, rows * cols)


def uses_coupling_matrix(maps: Tensor) -> bool:
    """Whether :func:`crosstalk_grid` takes the coupling-matrix route for ring maps ``(..., R, T, C)``."""
    return max(maps.shape[-3], maps.shape[-1]) <= COUPLING_MAX_SIDE and maps.numel() <= COUPLING_MAX_RINGS


def crosstalk_grid(maps: Tensor, kernel: Tensor, matrix: Tensor | None = None, adjoint: bool = False) -> Tensor:
    """Heat each ring sees, for power maps laid out ``(..., R, T, C)`` (``T`` independent tiles per row).

    The power map of each tile is correlated with ``kernel``, zero past the tile's edge: a 2-D
    convolution. Small maps run it as one matmul with the tile's coupling ``matrix`` (built from the kernel
    unless given; see ``COUPLING_MAX_SIDE``), larger ones as a depthwise ``conv2d``, never a dense coupling
    of a large bank. ``adjoint`` applies the transposed operator, which for a same-size correlation with an
    odd kernel is the correlation with the flipped kernel (``matrix`` then belongs to the flipped kernel).
    """
    *lead, rows, tiles, cols = maps.shape
    kh, kw = kernel.shape
    use_matrix = uses_coupling_matrix(maps)
    if matrix is not None and (matrix.dtype != maps.dtype or matrix.shape[-1] != rows * cols):
        matrix = None
    if adjoint and not (use_matrix and matrix is not None):
        kernel = kernel.flip(0, 1)
    if not use_matrix:
        kernel = kernel.to(maps.dtype)
        # Every tile of every map is one channel of a single image: one grouped convolution, no per-image overhead.
        planes = maps.movedim(-2, -3).reshape(1, -1, rows, cols)
        weight = kernel.view(1, 1, kh, kw).expand(planes.shape[1], 1, kh, kw)
        heated = F.conv2d(planes, weight, padding=(kh // 2, kw // 2), groups=planes.shape[1])
        return heated.view(*lead, tiles, rows, cols).movedim(-3, -2)
    matrix = coupling_matrix(kernel.to(maps.dtype), rows, cols) if matrix is None else matrix
    flat = maps.movedim(-2, -3).reshape(-1, rows * cols)  # (M·T, R·C): one row per tile
    return (flat @ matrix).view(*lead, tiles, rows, cols).movedim(-3, -2)


class LayerCoupling(NamedTuple):
    """The crosstalk of a whole logical layer ``(..., out, in)`` tiled over a bank, as two matmuls.

    A kernel of rank ``k`` is ``K = Σ_k u_k v_kᵀ``, so the zero-padded correlation of every tile is
    ``heat = Σ_k A_kᵀ·P·B_k`` with banded matrices that are zero between tiles. Stacking the ``k`` terms,
    ``heat = left @ (P @ right).view(out·k, in)``: two matmuls on the logical matrix, with none of the
    padding, tile reshuffles and slicing the ring-grid form needs. Small layers are bound by the count of
    tensor operations, not their size, so this halves the crosstalk's share of their time. It holds no
    gradient for the kernel: it is built only for a fixed chip (see :func:`layer_coupling`).
    """

    left: Tensor  # (out, out·k): left[r', r·k + j] = u_j[r − r' + kh//2] within one tile row block
    right: Tensor  # (in, k·in): right[c, j·in + c'] = v_j[c − c' + kw//2] within one tile column block
    left_t: Tensor  # left's transpose, contiguous: the adjoint's first factor
    right_t: Tensor  # right's transpose, contiguous

    def heat(self, power: Tensor) -> Tensor:
        """Heat each ring sees for power maps in the layer's own layout ``(..., out, in)``."""
        out_features, in_features = power.shape[-2:]
        stacked = (power @ self.right).view(*power.shape[:-2], out_features * self.rank, in_features)
        return self.left @ stacked

    def adjoint(self, grad: Tensor) -> Tensor:
        """The transposed operator (the vector–Jacobian product of :meth:`heat`)."""
        out_features, in_features = grad.shape[-2:]
        spread = (self.left_t @ grad).view(*grad.shape[:-2], out_features, self.rank * in_features)
        return spread @ self.right_t

    @property
    def rank(self) -> int:
        return self.right.shape[-1] // self.right.shape[-2]


LAYER_COUPLING_MAX_MACS = 1 << 21
"""Logical layers whose :class:`LayerCoupling` costs at most this many multiply-adds per map take it.

Its cost grows as ``out·in·k·(out + in)``, bounded with ``k ≤ min(kh, kw)``; past about two million
multiply-adds the ring-grid form, whose cost grows with the ring count alone, is the cheaper one
(measured with ``benchmarks/bench_mrr_layer.py``).
"""


def layer_coupling_fits(kernel: Tensor, out_features: int, in_features: int) -> bool:
    """Whether a ``(out, in)`` layer is small enough for :class:`LayerCoupling` (kernel rank bounded by its sides)."""
    rank = min(kernel.shape)
    return out_features * in_features * rank * (out_features + in_features) <= LAYER_COUPLING_MAX_MACS


def layer_coupling(kernel: Tensor, rows: int, cols: int, out_features: int, in_features: int) -> LayerCoupling:
    """:class:`LayerCoupling` of a ``(out, in)`` layer tiled over an ``R×C`` bank, from the kernel's SVD.

    The SVD runs in float64 and drops singular values below ``1e-13`` of the largest, so the operator
    equals :func:`crosstalk_grid` to rounding in the kernel's dtype.
    """
    u_mat, sigma, vh = torch.linalg.svd(kernel.detach().to(torch.float64))
    keep = max(1, int((sigma > sigma[0] * 1e-13).sum()))
    root = sigma[:keep].sqrt()
    u = (u_mat[:, :keep] * root).T  # (k, kh)
    v = vh[:keep] * root.unsqueeze(-1)  # (k, kw)
    vertical = _banded(u, out_features, rows)  # (k, source r, target r')
    horizontal = _banded(v, in_features, cols)  # (k, source c, target c')
    left = vertical.permute(2, 1, 0).reshape(out_features, out_features * keep)
    right = horizontal.permute(1, 0, 2).reshape(in_features, keep * in_features)
    left, right = left.to(kernel.dtype).contiguous(), right.to(kernel.dtype).contiguous()
    return LayerCoupling(left, right, left.mT.contiguous(), right.mT.contiguous())


def _banded(taps: Tensor, size: int, block: int) -> Tensor:
    """``(k, size, size)``: entry ``(j, source, target)`` is ``taps[j, source − target + n//2]``, zero across blocks."""
    index = torch.arange(size)
    source, target = index.view(-1, 1), index.view(1, -1)
    offset = source - target + taps.shape[-1] // 2
    inside = (offset >= 0) & (offset < taps.shape[-1]) & (source // block == target // block)
    banded = torch.zeros(taps.shape[0], size, size, dtype=taps.dtype)
    banded[:, inside] = taps.cpu()[:, offset[inside]]
    return banded.to(taps.device)


def crosstalk(power_mw: Tensor, kernel: Tensor) -> Tensor:
    """Heat each ring sees for power maps ``(..., R, C)``: :func:`crosstalk_grid` with one tile."""
    return crosstalk_grid(power_mw.unsqueeze(-2), kernel).squeeze(-2)


def resonance_from_power_nm(params: MRRChipParams, power_mw: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """``λ_res = rest + η·(K ⊛ P) + drift·ΔT`` for heater powers ``P`` (mW) on the ring grid."""
    heat = crosstalk(power_mw, params.crosstalk_kernel)
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
