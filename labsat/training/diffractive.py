"""Diffractive networks (D2NN) in training: the :class:`PhysicalLayer` of a phase-mask system and its twin.

A D2NN layer maps an image (``side²`` intensities) to the ten detector powers through two phase masks, so
its controls are the masks' phases ``(masks, N, N)`` whatever the layer's widths; ``PhotonicNet((64, 10),
control_shape)`` is then the SAT paper's network: one optical layer and a digital layer norm, scale and bias
on the ten powers. Phases start uniformly random in [0, 2π), as in the paper.

The control range (0, 2π) is the SLM's: a phase is periodic, so the box is no physical limit, but an SLM
shows one period of gray levels and a phase outside it has to be wrapped by the LUT anyway. SAT's clamp
therefore keeps the trained phases where the SLM can show them directly.

A D2NN's masks can sit rotated, shifted or scaled relative to the optical axis (:class:`Misalignment`);
:attr:`PhysicalLayer.disturbed` moves them, so FD-SAT (:mod:`labsat.training.fdsat`) can train against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from labsat.physics.diffractive import CLASSES, DiffractiveModel
from labsat.physics.slm import PHASE_RANGE
from labsat.systems.mrr import QueryStats
from labsat.training.network import ControlShape
from labsat.training.physical import LayerFn, PhysicalLayer

DeviceAt = Callable[[dict[str, float]], LayerFn]
"""``offsets -> forward``: the device with its mask frames moved by ``offsets`` (resampled before showing)."""


def control_shape(twin: DiffractiveModel) -> ControlShape:
    """``(out, in) -> (masks, N, N)``: the controls of any D2NN layer; only ten outputs exist."""

    def shape(out_features: int, in_features: int) -> tuple[int, ...]:
        if out_features != CLASSES:
            raise ValueError(f"a D2NN layer has {CLASSES} detector outputs, not {out_features}")
        return twin.optics.control_shape

    return shape


def initial_phases(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Uniform phases in [0, 2π), the paper's start (zeros would sit on the clamp at 0, half their steps cut off).

    They scatter most light out of the aperture at first; training gathers it onto the detectors.
    """
    return 2 * math.pi * torch.rand(shape, generator=generator)


def diffractive_physical_layer(
    twin: DiffractiveModel,
    device: LayerFn | None = None,
    *,
    device_at: DeviceAt | None = None,
    stats: Callable[[], QueryStats] = QueryStats,
) -> PhysicalLayer:
    """A D2NN as training sees it: ``device`` (None: the twin itself, in silico) with ``twin`` behind it.

    ``device_at(offsets)`` is the device with its masks moved (a simulator or an SLM driver resampling the
    shown frames); without it a moved device cannot be measured, and calling it says so. ``stats`` returns
    the device's query counters (the default counts nothing: a model costs no bench time).
    """

    def build(offsets: dict[str, float]) -> PhysicalLayer:
        moved = twin.with_misalignment(twin.misalignment.moved(offsets))
        if device is None:
            forward = moved.layer
        elif not any(offsets.values()):
            forward = device
        elif device_at is not None:
            forward = device_at(offsets)
        else:
            forward = _cannot_move(offsets)
        return PhysicalLayer(
            system_forward=forward,
            twin_layer=moved.layer,
            control_range=PHASE_RANGE,
            stats=stats,
            control_shape=control_shape(twin),
            initial_controls=initial_phases,
            disturbed=lambda more: build({k: offsets.get(k, 0.0) + more.get(k, 0.0) for k in {*offsets, *more}}),
        )

    return build({})


def _cannot_move(offsets: dict[str, float]) -> LayerFn:
    def refuse(x: Tensor, controls: Tensor) -> Tensor:
        raise NotImplementedError(f"this device cannot show its masks moved by {offsets}; give device_at")

    return refuse
