"""The one interface training has to a physical system: run a layer on the device, model it in a twin.

Training never sees heaters, rings or meshes. A photonic layer is a map ``(x, θ) -> y`` from non-negative
inputs ``x`` (B, in) and controls ``θ`` (out, in) to outputs (B, out), available two ways:

* ``system_forward`` — the device (through the System, its tiling and the safety guard): the truth, but
  opaque to autograd and costly (every call is counted in :class:`~labsat.readout.QueryStats`);
* ``twin_layer`` — a differentiable model of the same map (a calibrated twin, a nominal design model, or
  anything else with the right signature): free, but only as right as its parameters.

Every method in :mod:`labsat.training` is a different way of combining the two. An MZI mesh or a
diffractive system plugs in by providing the same four things; nothing here changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import torch
from torch import Tensor

from labsat.readout import QueryStats, clamp_inside
from labsat.training.network import ControlShape

LayerFn = Callable[[Tensor, Tensor], Tensor]
"""``(x (B, in) ≥ 0, θ (out, in)) -> y (B, out)``: one physical layer, on the device or in a model."""

LayerBackwardFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``(x, θ, ∂L/∂y (B, out)) -> (∂L/∂x (B, in), ∂L/∂θ)``: a backward pass the device runs itself, at input ``x``."""

DriftTwin = Callable[[float], LayerFn]
"""``drift -> twin layer`` at that drift of the system since calibration (a bank: kelvin of chip temperature)."""

DRIFT = "drift"
"""The disturbance :meth:`PhysicalLayer.drifting` moves: the system's drift since calibration (a bank: kelvin)."""


class LayerSystem(Protocol):
    """What a System must offer to be trained on (``MRRBankSystem`` does).

    A System may also offer ``project_controls(controls) -> controls``: the nearest controls its guard accepts
    (:meth:`PhysicalLayer.nearest_allowed` uses it; without it, :attr:`control_range` is the only rule).
    """

    stats: QueryStats

    @property
    def control_range(self) -> tuple[float, float]: ...

    def forward(self, x: Tensor, controls: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class PhysicalLayer:
    """A kind of physical layer as training sees it; every photonic layer of a network shares one.

    The control shape is not fixed here: a System tiles any ``(out, in)`` onto its hardware, so each
    network layer brings its own. ``stats`` returns the System's live counters, so a caller measures a
    step's cost as ``stats().since(before)``.
    """

    system_forward: LayerFn
    twin_layer: LayerFn
    control_range: tuple[float, float]
    stats: Callable[[], QueryStats]
    control_shape: ControlShape | None = None
    """Shape of the controls of an ``(out, in)`` layer; None: the ``(out, in)`` matrix itself (a tiled bank).

    An MZI mesh's controls are its heater vector, whatever the layer's widths."""
    initial_controls: Callable[[tuple[int, ...], torch.Generator], Tensor] | None = None
    """Seeded starting controls of a given shape; None: random weights realised through the twin."""
    system_backward: LayerBackwardFn | None = None
    """The device's own backward pass (e.g. an optical probe through a saturable absorber); None: it has none.

    Only optical backprop (``obp``) uses it; every other method's backward goes through the twin."""
    project: Callable[[Tensor], Tensor] | None = None
    """The nearest controls of any layer shape that the device accepts, in the controls' own dtype (the guard's
    allowed set: box, current, power, budget, neighbour rule); None: :attr:`control_range` is the whole rule."""
    disturbed: Callable[[dict[str, float]], PhysicalLayer] | None = None
    """This layer with non-trainable disturbance parameters (a mask's rotation, shift, scale) moved by the given
    offsets: the twin re-modelled there, the device realising it where it can. FD-SAT
    (:mod:`labsat.training.fdsat`) trains against the worst such offset; None: the system has none."""
    drift_twin: DriftTwin | None = None
    """The twin after the system's slow drift (a bank: its temperature, in kelvin), so NAT can size noise by what
    drift does to the output (:mod:`labsat.training.nat`); None: the twin models no drift."""

    @classmethod
    def from_system(
        cls, system: LayerSystem, twin_layer: LayerFn, drift_twin: DriftTwin | None = None
    ) -> PhysicalLayer:
        """Pair a System (the device) with a twin's layer function (e.g. ``MRRBankModel(params).layer``).

        A twin layer that takes ``delta_t_k`` (a bank's: the chip's temperature since calibration) drifts through
        it unless ``drift_twin`` says otherwise, so every bank's layer gives NAT its drift term.
        """
        if drift_twin is None and _takes_temperature(twin_layer):
            drift_twin = _drifting(twin_layer)
        return cls(
            system_forward=system.forward,
            twin_layer=twin_layer,
            control_range=tuple(system.control_range),  # type: ignore[arg-type]
            stats=lambda: system.stats.copy(),
            project=getattr(system, "project_controls", None),
            drift_twin=drift_twin,
        )

    def nearest_allowed(self, controls: Tensor) -> Tensor:
        """``controls`` moved to the nearest setting the device accepts: every write, probe and perturbed point
        training sends goes through here, so none is refused by the guard."""
        if self.project is not None:
            return self.project(controls)
        low, high = self.control_range
        return clamp_inside(controls, low, high)

    def drifting(self) -> PhysicalLayer:
        """This layer with its drift as the disturbance FD-SAT can train against (:data:`DRIFT`).

        Only the twin moves: nothing on the bench sets a chip's temperature, so the device stays where it is and an
        FD-SAT step that probes the drift must probe it through the twin (the in-silico SAT ascent).
        """
        if self.drift_twin is None:
            raise ValueError("this layer's twin models no drift: there is no drift disturbance to train against")
        return replace(self, disturbed=partial(_drifted, self))

    def with_twin(self, twin_layer: LayerFn) -> PhysicalLayer:
        """The same device with another model behind it (a corrected twin, a drifted twin, an ideal one).

        ``disturbed`` and ``drift_twin`` are dropped: they move the old twin, and nothing says how to move the new one.
        """
        return replace(self, twin_layer=twin_layer, disturbed=None, drift_twin=None)


def _drifting(twin_layer: Callable[..., Tensor]) -> DriftTwin:
    """``twin_layer`` at a chip temperature ``kelvin`` since calibration."""
    return lambda kelvin: partial(twin_layer, delta_t_k=kelvin)


def _drifted(layer: PhysicalLayer, offsets: dict[str, float]) -> PhysicalLayer:
    """``layer`` with its twin ``offsets[DRIFT]`` from calibration; any other disturbance name is refused."""
    unknown = sorted(set(offsets) - {DRIFT})
    if unknown:
        raise ValueError(f"unknown disturbance {', '.join(map(repr, unknown))} of a drifting layer (known: {DRIFT!r})")
    assert layer.drift_twin is not None
    return replace(layer, twin_layer=layer.drift_twin(offsets.get(DRIFT, 0.0)), disturbed=None)


def _takes_temperature(twin_layer: Callable[..., Tensor]) -> bool:
    try:
        return "delta_t_k" in inspect.signature(twin_layer).parameters
    except (TypeError, ValueError):  # a callable without a signature to read: assume no drift model
        return False
