"""MZI meshes in training: the :class:`PhysicalLayer` of a mesh System, trained in phase.

A mesh layer's controls are the phase shifts its ``N(N−1)`` heaters add (rad, θ and φ interleaved as the
heater channels are), whatever the layer's widths (inputs ``in ≤ N``, outputs all ``N`` modes), so the
layer supplies :attr:`PhysicalLayer.control_shape`. Training in phase rather than in heater volts matters
for SAT: a phase error of the chip is the same size at every setting, while a volt is worth
``dφ/dV = 2πV/(R·P_π)`` rad (nothing near 0 V, most at full drive), so a ball of radius ρ in volts is a
lopsided set of phase errors. The System receives volts: each phase shift is wrapped into [0, 2π) and
converted through the twin's heater model (``V = √(P·R)``, ``P = P_π·φ/π``), which is where a calibrated
twin's fitted ``P_π`` and resistance pay off. A phase is periodic, so the control range is unbounded.
A shift the heaters cannot reach inside the guard's allowed set (a heater whose ``P_π·R`` needs more than the
range for 2π, or a power, budget or neighbour limit) is set at the nearest allowed point (the guard's
projection): the guard is never asked for more than the bench file allows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from labsat.errors import LabsatError
from labsat.physics.mzi import MZIMeshModel, volts_for_phase
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.config import TrainConfig
from labsat.training.phase import phase_network
from labsat.training.physical import PhysicalLayer

PHASE_RANGE = (-math.inf, math.inf)
"""Phase-shift controls are periodic: any value is a valid setting (the System wraps it into the heaters' range)."""


def mesh_physical_layer(system: MZIMeshSystem, twin: MZIMeshModel, outputs: int | None = None) -> PhysicalLayer:
    """``system`` as phase-space training sees it, with ``twin`` (design or calibrated) modelling it.

    ``outputs`` keeps the first that many modes as the layer's outputs (all ``N`` if None): a mesh larger
    than the number of classes, read out on its first modes as in the SAT paper, has room to spare.
    """
    modes = system.modes
    outputs = modes if outputs is None else outputs
    if not 1 <= outputs <= modes:
        raise ValueError(f"a {modes}-mode mesh has 1 to {modes} outputs, not {outputs}")

    def control_shape(out_features: int, in_features: int) -> tuple[int, ...]:
        if out_features != outputs or in_features > modes:
            raise ValueError(f"a {modes}-mode mesh layer maps at most {modes} inputs to its first {outputs} modes")
        return system.control_shape

    def initial_controls(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return 2 * math.pi * torch.rand(shape, generator=generator)

    def system_forward(x: Tensor, shifts: Tensor) -> Tensor:
        with torch.no_grad():
            params = twin.params
            volts = volts_for_phase(params, shifts.to(params.theta_offset))
        return system.forward(x, system.project_controls(volts.float()))[:, :outputs]

    def twin_layer(x: Tensor, shifts: Tensor) -> Tensor:
        return twin.phase_layer(x, shifts)[..., :outputs]

    return PhysicalLayer(
        system_forward=system_forward,
        twin_layer=twin_layer,
        control_range=PHASE_RANGE,
        stats=lambda: system.stats.copy(),
        control_shape=control_shape,
        initial_controls=initial_controls,
    )


def mesh_network(config: TrainConfig, modes: int, classes: int) -> TrainConfig:
    """``config`` fitted to a ``modes``-mode mesh: the SAT paper's mesh network, as ``labsat train`` builds it.

    A mesh is one photonic layer no wider than its modes, read out on its first ``classes`` modes, so a
    trained digital encoder maps the features onto the modes (``encoder``; default: all ``modes``), and
    the rest is what every phase layer affords (:func:`~labsat.training.phase.phase_network`: no hidden
    layers, no adaptive SAT from a "peak", no weight-space ``bp``, since a mesh's layer ``|U(θ)x|²`` is no
    weight matrix).
    """
    config = phase_network(
        config,
        layer="a mesh's layer is |U(θ)x|²",
        network="a mesh network is an encoder and one pass through the mesh",
    )
    if classes > modes:
        raise LabsatError(f"a {modes}-mode mesh reads at most {modes} classes; the dataset has {classes}")
    encoder = modes if config.encoder is None else config.encoder
    if not 1 <= encoder <= modes:
        raise LabsatError(f"a {modes}-mode mesh takes 1 to {modes} encoder outputs, not {encoder}")
    return config.model_copy(update={"encoder": encoder})
