"""Heaters and heat: electrical power, thermal crosstalk between rings, the resonance it moves, the drop line."""

from __future__ import annotations

import functools
from typing import Any

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


BANDED_MAX_SIDE = 16
BANDED_MAX_RINGS = 1 << 14
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


def band_blocks(kernel: Tensor, cols: int) -> Tensor:
    """Stacked row-Toeplitz blocks ``(kh·C, C)`` of ``kernel`` for the banded crosstalk."""
    kh, kw = kernel.shape
    return (kernel.reshape(1, -1) @ _band_basis(cols, kh, kw, kernel.device, kernel.dtype)).view(kh * cols, cols)


def uses_blocks(maps: Tensor) -> bool:
    """Whether :func:`crosstalk_grid` takes the banded route for ring maps ``(..., R, T, C)``."""
    return max(maps.shape[-3], maps.shape[-1]) <= BANDED_MAX_SIDE and maps.numel() <= BANDED_MAX_RINGS


def crosstalk_grid(maps: Tensor, kernel: Tensor, blocks: Tensor | None = None, adjoint: bool = False) -> Tensor:
    """Heat each ring sees, for power maps laid out ``(..., R, T, C)`` (``T`` independent tiles per row).

    The power map of each tile is correlated with ``kernel``, zero past the tile's edge: a 2-D
    convolution, never a dense (R·C)×(R·C) coupling matrix. Small maps run it as one matmul of the row
    windows with banded row-Toeplitz ``blocks`` (built from the kernel unless given), larger ones as a
    depthwise ``conv2d`` (see ``BANDED_MAX_SIDE``). ``adjoint`` applies the transposed operator, which for a
    same-size correlation with an odd kernel is the correlation with the flipped kernel (``blocks`` then
    belong to the flipped kernel).
    """
    *lead, rows, tiles, cols = maps.shape
    kh, kw = kernel.shape
    use_blocks = uses_blocks(maps)
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
    blocks = band_blocks(kernel.to(maps.dtype), cols) if blocks is None else blocks
    padded = F.pad(maps.reshape(-1, rows, tiles, cols), (0, 0, 0, 0, kh // 2, kh // 2))
    # Row window of ring (r, c): rows r − kh//2 … r + kh//2 of its tile, each row filtered by its own block.
    windows = padded.unfold(1, kh, 1).transpose(-1, -2).reshape(-1, kh * cols)  # (M·R·T, kh·C)
    return (windows @ blocks).view(*lead, rows, tiles, cols)


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
