"""MZI meshes in training: the :class:`PhysicalLayer` of a mesh System and its twin.

A mesh layer's controls are its heater vector ``(N(N−1),)`` whatever the layer's widths (inputs
``in ≤ N``, outputs all ``N`` modes), so the layer supplies :attr:`PhysicalLayer.control_shape`; and it
starts from uniformly random phases (heater volts ``√(P·R)`` for phase ``π·P/P_π`` in [0, 2π)) rather
than from random weights, which a unitary layer does not have.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from labsat.datasets import Dataset, Split
from labsat.physics.mzi import MZIChipParams, volts_for_phase
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.physical import LayerFn, PhysicalLayer


def mesh_inputs(dataset: Dataset, modes: int) -> Dataset:
    """``dataset`` projected onto its first ``modes`` principal components, scaled to amplitudes in [0, 1].

    A mesh has only ``N`` input modes, so a 64-pixel digit must be compressed first; PCA keeps the most
    variance per mode. The projection and the min–max scaling use the training split only; test values
    outside the training range are clipped (as :mod:`labsat.datasets` does).
    """
    x = dataset.train.x.double()
    mean = x.mean(0)
    _, _, v = torch.linalg.svd(x - mean, full_matrices=False)
    basis = v[:modes].T

    def project(split: Split) -> Tensor:
        return (split.x.double() - mean) @ basis

    train = project(dataset.train)
    low, high = train.amin(0), train.amax(0)

    def scaled(split: Split) -> Split:
        return Split(((project(split) - low) / (high - low)).clamp(0, 1).float(), split.y)

    return Dataset(f"{dataset.name}-pca{modes}", scaled(dataset.train), scaled(dataset.test), dataset.n_classes)


def mesh_physical_layer(
    system: MZIMeshSystem, twin_layer: LayerFn, design: MZIChipParams | None = None
) -> PhysicalLayer:
    """``system`` as training sees it, with ``twin_layer`` behind it; ``design`` sets the initial phases' volts."""
    modes = system.modes
    design = system.nominal_params() if design is None else design

    def control_shape(out_features: int, in_features: int) -> tuple[int, ...]:
        if out_features != modes or in_features > modes:
            raise ValueError(f"a {modes}-mode mesh layer maps at most {modes} inputs to {modes} outputs")
        return system.control_shape

    def initial_controls(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        phase = 2 * math.pi * torch.rand(shape, generator=generator, dtype=torch.float64)
        low, high = system.control_range
        return volts_for_phase(design.to("cpu", torch.float64), phase).clamp(low, high).float()

    return PhysicalLayer(
        system_forward=system.forward,
        twin_layer=twin_layer,
        control_range=system.control_range,
        stats=lambda: system.stats.copy(),
        control_shape=control_shape,
        initial_controls=initial_controls,
    )
