"""Ring weights of a bank, and of a logical layer tiled over it, for heater drives (volts or mW)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.physics.compute import functorch_active
from labsat.physics.mrr.lorentz import lorentz_weights
from labsat.physics.mrr.params import MRRChipParams, TemperatureShift
from labsat.physics.mrr.thermal import (
    COUPLING_MAX_SIDE,
    LayerCoupling,
    coupling_matrix,
    crosstalk_grid,
    drop_transmission,
    heater_power_mw,
    layer_coupling,
    layer_coupling_fits,
)
from labsat.physics.mrr.tiles import from_logical_grid, logical_grid, logical_grid_shape


class GridView:
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
    """The fused node's per-ring inputs for a chip, on the grid layout.

    See :class:`~labsat.physics.mrr.lorentz._LorentzWeights`.
    """

    power_gain: Tensor
    coupling: Tensor
    detune: Tensor
    inv_halfwidth: Tensor
    amplitude: Tensor
    offset: Tensor
    blocks: Tensor | LayerCoupling | None
    flipped_blocks: Tensor | LayerCoupling | None


def _constants(params: MRRChipParams, tiled: bool, readout: bool) -> _Constants:
    grid = GridView(params, tiled)
    inv_halfwidth = grid.ring(2 / params.fwhm_nm)
    amplitude = grid.ring(2 * params.drop_depth)
    scale = torch.ones((), dtype=amplitude.dtype, device=amplitude.device)
    if readout:
        scale = grid.row(params.readout_volts_per_mw) * grid.channel(params.input_power_mw)
        amplitude = amplitude * scale
    blocks = flipped = None
    if max(params.rows, params.cols) <= COUPLING_MAX_SIDE:
        blocks = coupling_matrix(params.crosstalk_kernel, params.rows, params.cols)
        flipped = blocks.mT.contiguous()  # the flipped kernel's coupling matrix: the adjoint
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


def grid_weights(
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
    grid = GridView(params, tiled=layout is not None)
    temperature = grid.temperature(delta_t_k)
    if params.spectral_crosstalk:
        on_grid = drive if layout is None else logical_grid(drive, *layout)
        power = heater_power_mw(on_grid, grid.ring(params.heater_resistance_ohm)) if volts else on_grid
        heat = crosstalk_grid(power, params.crosstalk_kernel)
        resonance = grid.ring(params.rest_resonance_nm) + grid.ring(params.efficiency_nm_per_mw) * heat
        resonance = resonance + params.drift_nm_per_k * temperature
        channels = grid.channel(params.channel_wavelength_nm)
        weights = _spectral_weights(channels, resonance, grid.ring(params.fwhm_nm), grid.ring(params.drop_depth))
        if readout:
            weights = weights * grid.row(params.readout_volts_per_mw) * grid.channel(params.input_power_mw)
        return weights if layout is None else from_logical_grid(weights, *drive.shape[-2:])
    constants: _Constants
    if layout is not None and _takes_layer_coupling(params, drive, temperature):
        shape = (drive.shape[-2], drive.shape[-1])
        constants = params._cached(("layer", shape, readout), lambda: _layer_constants(params, shape, readout))
        layout = None  # the drive and the constants are both in the layer's own layout
    else:
        key = ("grid", layout is not None, readout)
        constants = params._cached(key, lambda: _constants(params, layout is not None, readout))
    detune = constants.detune
    if isinstance(temperature, Tensor) or temperature != 0:
        detune = detune - (params.drift_nm_per_k * temperature) * constants.inv_halfwidth
    return lorentz_weights(
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


def _takes_layer_coupling(params: MRRChipParams, drive: Tensor, temperature: TemperatureShift) -> bool:
    """Whether a logical layer's weights can take :class:`LayerCoupling`: a small layer of one fixed chip.

    Fixed: no tensor of the chip tracks grad (a twin being fitted needs the kernel's derivative) and no
    ``torch.func`` transform runs; one chip, and one temperature for the whole layer.
    """
    uniform = not isinstance(temperature, Tensor) or temperature.dim() == 0
    return (
        uniform
        and not params.batch_shape
        and layer_coupling_fits(params.crosstalk_kernel, drive.shape[-2], drive.shape[-1])
        and not params.tracks_grad()
        and not functorch_active()
    )


def _layer_constants(params: MRRChipParams, shape: tuple[int, int], readout: bool) -> _Constants:
    """The node's per-ring inputs repeated over a ``(out, in)`` layer's tiles, with the layer's crosstalk operator."""
    grid: _Constants = params._cached(("grid", True, readout), lambda: _constants(params, True, readout))
    out_features, in_features = shape
    tiled = logical_grid_shape(torch.Size(shape), params.rows, params.cols)

    def over_layer(t: Tensor) -> Tensor:
        return t if t.dim() == 0 else from_logical_grid(t.expand(tiled), out_features, in_features).contiguous()

    coupling = layer_coupling(params.crosstalk_kernel, params.rows, params.cols, out_features, in_features)
    per_ring = grid._replace(blocks=None, flipped_blocks=None)._asdict()
    return _Constants(
        **{name: over_layer(t) for name, t in per_ring.items() if t is not None},
        blocks=coupling,
        flipped_blocks=coupling,
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
    return grid_weights(params, power_mw.unsqueeze(-2), delta_t_k, volts=False).squeeze(-2)


def bank_weights(params: MRRChipParams, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Ring weights ``w = T_d − T_t = 2·T_d − 1 ∈ [−1, 1]`` for heater voltages ``(..., R, C)``.

    ``T_d`` is the Lorentzian drop of ring ``(r, c)`` at detuning ``δ = λ_c − λ_res``, ``T_t = 1 − T_d``.
    With ``params.spectral_crosstalk`` the other rings of the row filter channel ``c`` too.
    """
    return grid_weights(params, heater_volts.unsqueeze(-2), delta_t_k, volts=True).squeeze(-2)


def logical_weights(params: MRRChipParams, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Weights ``(*S, out, in)`` of a logical layer whose heater controls ``(out, in)`` are tiled over one chip.

    Every tile is programmed on the same physical bank in turn (time multiplexing), so every tile sees
    the same rings: tile ``(i, j)`` element ``(r, c)`` is ring ``(r, c)``; unused rings of a partial tile
    are at 0 V (see :func:`to_tiles`).
    """
    return grid_weights(params, controls, delta_t_k, volts=True, layout=(params.rows, params.cols))


def logical_readout(params: MRRChipParams, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
    """Detector volts ``(*S, B, out)`` for inputs ``x`` ∈ [0, 1] ``(B, in)``, summed over column tiles.

    This is the whole optical path of a time-multiplexed layer: heater power, thermal crosstalk,
    Lorentzian weights, the modulators (fraction ``x`` of ``P_in``, as the System programs them),
    balanced detection with per-row gain, one dark offset per column tile.
    """
    out_features, in_features = controls.shape[-2:]
    weights = grid_weights(params, controls, delta_t_k, volts=True, layout=(params.rows, params.cols), readout=True)
    tile_rows, tile_cols = -(-out_features // params.rows), -(-in_features // params.cols)

    def dark_offset() -> Tensor:
        offset = params.readout_offset_v * tile_cols
        return offset.repeat(*([1] * (offset.dim() - 1)), tile_rows)[..., :out_features]

    offset = params._cached(("offset", tile_rows, tile_cols, out_features), dark_offset)
    if weights.dim() == 2:
        return F.linear(x, weights, offset)
    return x @ weights.mT + offset.unsqueeze(-2)
