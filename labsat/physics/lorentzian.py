"""The reduced microring weight model of the SAT work's MRR study: one Lorentzian per weight, no crosstalk.

Each weight is ``w = L(V) = 1 − 2/(1 + (V/γ)²)`` of one control ``V`` (the ring's detuning from its
resonance, in nm), with ``γ = 0.15`` nm the half linewidth: ``V = 0`` sits on resonance (``w = −1``) and
``|V| ≫ γ`` is off resonance (``w → +1``). A uniform chip temperature change ``ΔT`` moves every
resonance by 80 pm/K, i.e. ``V → V + 0.08·ΔT``; a fabricated chip adds a fixed per-ring offset. This is
the model behind the paper's drift sweep (fc2 and fc3 of LeNet-5 on the chip), kept beside labsat's
full bank physics (:mod:`labsat.physics.mrr`) so the paper's numbers can be reproduced in its own setting.
"""

from __future__ import annotations

import torch
from torch import Tensor

GAMMA_NM = 0.15
"""Half width at half maximum of each ring's Lorentzian, in nm of detuning (the paper's ``γ``)."""

DRIFT_NM_PER_K = 0.08
"""Resonance shift per kelvin of chip temperature change (80 pm/K)."""

WEIGHT_LIMIT = 0.999
"""|w| a weight-space network is clamped to: ``L⁻¹`` is infinite at ``w = 1``."""


def weight(control: Tensor, gamma: float = GAMMA_NM) -> Tensor:
    """``w = 1 − 2/(1 + (V/γ)²)`` for detuning ``V`` (nm)."""
    return 1.0 - 2.0 / (1.0 + (control / gamma).square())


def control_for(w: Tensor, gamma: float = GAMMA_NM) -> Tensor:
    """The detuning ``V ≥ 0`` that sets weight ``w`` (clamped to ±:data:`WEIGHT_LIMIT`): ``γ·√((1+w)/(1−w))``."""
    w = w.clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT)
    return gamma * torch.sqrt((1.0 + w) / (1.0 - w))


def drift_shift(delta_t_k: float) -> float:
    """The detuning change (nm) of every ring for a uniform temperature change of ``delta_t_k`` kelvin."""
    return DRIFT_NM_PER_K * delta_t_k
