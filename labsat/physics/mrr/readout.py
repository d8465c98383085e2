"""What goes in and comes out of a bank: modulated channel powers and the balanced detectors' volts."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.physics.mrr.params import MRRChipParams


def per_sample(channel_values: Tensor, params: MRRChipParams) -> Tensor:
    """Per-channel values of a chip population, lifted over the sample axis: ``(*S, C) -> (*S, 1, C)``."""
    return channel_values.unsqueeze(-2) if params.batch_shape else channel_values


def modulator_power_mw(params: MRRChipParams, mod_volts: Tensor) -> Tensor:
    """Optical power per channel ``P_in·sin²(πV/(2·V_π))`` for modulator drives ``(B, C)``."""
    v_pi = per_sample(params.modulator_v_pi, params)
    return per_sample(params.input_power_mw, params) * torch.sin(mod_volts * (math.pi / 2) / v_pi).square()


def modulator_volts_for(params: MRRChipParams, x: Tensor) -> Tensor:
    """Drive that passes fraction ``x`` ∈ [0, 1] of ``P_in`` (inverse of :func:`modulator_power_mw`).

    For programming a modulator, not for a training graph: d/dx of ``asin(√x)`` is infinite at 0 and 1.
    """
    v_pi = per_sample(params.modulator_v_pi, params)
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
