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

from labsat.physics.mrr.model import MRRBankModel
from labsat.physics.mrr.params import TENSOR_FIELDS, MRRChipParams, TemperatureShift
from labsat.physics.mrr.readout import balanced_readout, modulator_power_mw, modulator_volts_for
from labsat.physics.mrr.thermal import (
    drop_transmission,
    heater_power_mw,
    resonance_from_power_nm,
    resonance_nm,
    sat_reduced_weight,
    thermal_kernel,
)
from labsat.physics.mrr.tiles import from_tiles, to_tiles
from labsat.physics.mrr.weights import bank_weights, logical_readout, logical_weights, weights_from_power

__all__ = [
    "TENSOR_FIELDS",
    "MRRBankModel",
    "MRRChipParams",
    "TemperatureShift",
    "balanced_readout",
    "bank_weights",
    "drop_transmission",
    "from_tiles",
    "heater_power_mw",
    "logical_readout",
    "logical_weights",
    "modulator_power_mw",
    "modulator_volts_for",
    "resonance_from_power_nm",
    "resonance_nm",
    "sat_reduced_weight",
    "thermal_kernel",
    "to_tiles",
    "weights_from_power",
]
