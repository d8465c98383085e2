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

On a bench, ``labsat train`` builds the network with :func:`d2nn_network` and the layer from the bench's
System (with its calibrated LUTs) and its nominal twin.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from labsat.errors import LabsatError
from labsat.physics.diffractive import CLASSES, DISTURBANCES, DiffractiveModel
from labsat.physics.slm import PHASE_RANGE
from labsat.readout import QueryStats
from labsat.systems.d2nn import D2NNSystem
from labsat.training.config import TrainConfig
from labsat.training.fdsat import FDSAT, require_in_silico
from labsat.training.methods import Backprop
from labsat.training.network import ControlShape
from labsat.training.phase import phase_network
from labsat.training.physical import LayerFn, PhysicalLayer
from labsat.training.runners import twin_runner

DeviceAt = Callable[[dict[str, float]], LayerFn]
"""``offsets -> forward``: the device with its mask frames moved by ``offsets`` (resampled before showing)."""


def control_shape(twin: DiffractiveModel, outputs: int = CLASSES) -> ControlShape:
    """``(out, in) -> (masks, N, N)``: the controls of any D2NN layer, which reads ``outputs`` detectors."""

    def shape(out_features: int, in_features: int) -> tuple[int, ...]:
        if out_features != outputs:
            reads = "" if outputs == CLASSES else f" (this layer reads the first {outputs})"
            raise ValueError(f"a D2NN layer has {CLASSES} detector outputs{reads}, not {out_features}")
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
    outputs: int = CLASSES,
) -> PhysicalLayer:
    """A D2NN as training sees it: ``device`` (None: the twin itself, in silico) with ``twin`` behind it.

    ``device_at(offsets)`` is the device with its masks moved (a simulator or an SLM driver resampling the
    shown frames); without it a moved device cannot be measured, and calling it says so. ``stats`` returns
    the device's query counters (the default counts nothing: a model costs no bench time). ``outputs``
    keeps the first that many detector regions (classes 0..outputs−1) as the layer's outputs.
    """
    if not 1 <= outputs <= CLASSES:
        raise ValueError(f"a D2NN has 1 to {CLASSES} outputs, not {outputs}")

    def read(layer: LayerFn) -> LayerFn:
        if outputs == CLASSES:
            return layer
        return lambda x, controls: layer(x, controls)[..., :outputs]

    def build(offsets: dict[str, float]) -> PhysicalLayer:
        moved = twin.with_misalignment(twin.misalignment.moved(offsets))
        forward: Callable[[Tensor, Tensor], Tensor]
        if device is None:
            forward = moved.layer
        elif not any(offsets.values()):
            forward = device
        elif device_at is not None:
            forward = device_at(offsets)
        else:
            forward = _cannot_move(offsets)
        return PhysicalLayer(
            system_forward=read(forward),
            twin_layer=read(moved.layer),
            control_range=PHASE_RANGE,
            stats=stats,
            control_shape=control_shape(twin, outputs),
            initial_controls=initial_phases,
            disturbed=lambda more: build({k: offsets.get(k, 0.0) + more.get(k, 0.0) for k in {*offsets, *more}}),
        )

    return build({})


def d2nn_network(config: TrainConfig, system: D2NNSystem, features: int, classes: int) -> TrainConfig:
    """``config`` fitted to the D2NN ``system`` for a dataset's ``features`` and ``classes``, as ``labsat train``
    builds it.

    A D2NN is one optical layer from the image on the input SLM to ten detector regions, then a digital
    layer norm, scale and bias, so:

    * the dataset is shown as that image: it must have exactly ``side²`` features (64 for the 8×8 input
      SLM), and there is no digital encoder (the optics are the first layer, and an encoder's outputs are
      no intensities);
    * at most ten classes, read on the first detector regions (``outputs`` of the layer);
    * the rest is what every phase layer affords (:func:`~labsat.training.phase.phase_network`: no hidden
      layers, no adaptive SAT from a "peak", no weight-space ``bp``);
    * FD-SAT (``fd_disturbance``) is checked now, before calibration or device time (a bad disturbance name,
      a method without SAT, DAT, a non-positive ``fd_delta_max``), and is taken **in silico only**: with
      ``sat`` or ``nat+sat`` and the twin ascent, whose probe and descent at the moved masks both run on the
      twin (``twin.with_misalignment``), after which the device measures what was trained. A device method
      (``pat+sat``, or any device ascent) would measure the device with its masks moved, and on a bench
      nothing can turn or shift the mask SLMs; showing resampled frames instead would only imitate a
      misalignment, with the resampling's own errors. The simulated bench could move its masks, but
      ``labsat train`` treats it as the bench it stands in for and refuses the same runs.
      (:func:`diffractive_physical_layer` with ``device_at`` takes them where a device can be moved.)
    """
    config = phase_network(
        config,
        layer="a D2NN's layer is the light its phase masks steer onto ten detectors",
        network="a D2NN network is one pass through the masks and a digital layer norm, scale and bias",
    )
    side = system.spec.input_side
    if features != side**2:
        raise LabsatError(
            f"a {system.label} shows each sample as an image on its {side}×{side} input SLM: the dataset needs "
            f"{side**2} features, not {features}"
        )
    if classes > CLASSES:
        raise LabsatError(
            f"a {system.label} reads at most {CLASSES} classes (its detectors); the dataset has {classes}"
        )
    if config.encoder is not None:
        raise LabsatError(
            f"a {system.label} takes the image itself on its input SLM; it has no digital encoder "
            f"(got encoder={config.encoder})"
        )
    if config.fd_disturbance is not None:
        _check_fd_sat(config, system)
    return config


def check_disturbance(name: str) -> str:
    """``name`` if it is a misalignment parameter FD-SAT can move (:data:`DISTURBANCES`); refused otherwise."""
    if name not in DISTURBANCES:
        raise LabsatError(f"unknown FD-SAT disturbance {name!r} (known: {', '.join(DISTURBANCES)})")
    return name


def _check_fd_sat(config: TrainConfig, system: D2NNSystem) -> None:
    """Refuse an FD-SAT run that cannot run on a bench (see :func:`d2nn_network`), before it costs anything.

    FD-SAT's own checks run by building it on the in-silico layer (never stepped): one place says what it takes.
    """
    method = config.parsed
    FDSAT(
        diffractive_physical_layer(system.nominal_twin()),
        method,
        lambda physical: Backprop(twin_runner(physical)),
        disturbance=check_disturbance(str(config.fd_disturbance)),
        delta_max=config.fd_delta_max,
        gain=config.fd_gain,
    )
    require_in_silico(
        method, f"the {system.label} with its masks moved", "nothing on a bench can turn or shift its mask SLMs"
    )


def _cannot_move(offsets: dict[str, float]) -> LayerFn:
    def refuse(x: Tensor, controls: Tensor) -> Tensor:
        raise NotImplementedError(f"this device cannot show its masks moved by {offsets}; give device_at")

    return refuse
