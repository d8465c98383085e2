"""Training methods as gradient sources: what computes ∇L for one batch, and what it costs the device.

A method is a *base* gradient source plus, optionally, SAT on top:

=============  =======================================================  ======================
base           gradient                                                 device forwards/pass
=============  =======================================================  ======================
``bp``         ideal weights ``x @ wᵀ``, w ∈ [−1, 1]; deployed after      0
``bp-control`` autograd through the twin, θ = controls                  0
``nat``        twin with fitted control, drift and read noise injected  0
``pat``        device forward, twin VJP at the measured inputs          1
``dat``        PAT through a twin with online-fitted correctors         1
``obp``        device forward *and* backward (optical probe pass)       1 (+1 backward)
=============  =======================================================  ======================

``sat`` is ``bp-control`` with SAT; ``pat+sat``, ``dat+sat``, ``nat+sat`` put SAT on the others. SAT's
ascent gradient comes from ``--ascent``: ``twin`` (autograd through the method's twin, free), ``pat`` (the
method's own device pass if it has one, else PAT: one more device forward per step), ``fd`` (central
differences of the device loss, 2P forwards for P controls) or ``spsa`` (2q forwards, momentum ascent).
Weight-space ``bp`` has no controls to perturb, so it takes no SAT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.ascent import GradientEstimator
from labsat.errors import LabsatError
from labsat.training.network import LayerRunner, PhotonicNet

Base = Literal["bp", "bp-control", "nat", "pat", "dat", "obp"]
Ascent = Literal["twin", "pat", "fd", "spsa"]

METHODS = ("bp", "bp-control", "nat", "pat", "dat", "obp", "sat", "pat+sat", "dat+sat", "nat+sat")
ASCENTS: tuple[Ascent, ...] = ("twin", "pat", "fd", "spsa")


class MethodError(LabsatError):
    """A method name or a method/option combination that does not exist."""


@dataclass(frozen=True)
class Method:
    """A parsed method name: its base gradient source, whether SAT wraps it, and SAT's ascent source."""

    name: str
    base: Base
    sat: bool
    ascent: Ascent | None

    @property
    def weight_space(self) -> bool:
        """Trains ideal weights and deploys them afterwards (the only method that is not in control space)."""
        return self.base == "bp"


def parse_method(name: str, ascent: str | None = None) -> Method:
    """``"pat+sat"`` -> Method(base="pat", sat=True, ascent="pat"); ``ascent`` overrides the default."""
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    sat = name == "sat" or name.endswith("+sat")
    base: Base = "bp-control" if name == "sat" else name.removesuffix("+sat")  # type: ignore[assignment]
    if ascent is not None and ascent not in ASCENTS:
        raise MethodError(f"unknown ascent {ascent!r} (known: {', '.join(ASCENTS)})")
    if not sat:
        if ascent is not None:
            raise MethodError(f"--ascent applies to SAT methods only; {name!r} has no ascent step")
        return Method(name, base, False, None)
    default: Ascent = "pat" if base in ("pat", "dat") else "twin"
    return Method(name, base, True, ascent or default)


class GradientSource(Protocol):
    """Computes the loss of a batch and leaves its gradient in ``.grad`` (accumulating, like ``backward``).

    Returns the loss at the present parameters, or None where the source measures no loss (FD and SPSA
    estimate a gradient from perturbed losses only).
    """

    def __call__(self, net: PhotonicNet, x: Tensor, y: Tensor) -> Tensor | None: ...


@dataclass
class Backprop:
    """Autograd through whatever the runner computes (ideal model, twin, noisy twin, PAT)."""

    runner: LayerRunner

    def __call__(self, net: PhotonicNet, x: Tensor, y: Tensor) -> Tensor:
        loss = F.cross_entropy(net(x, self.runner), y)
        loss.backward()
        return loss.detach()


@dataclass
class DeviceEstimate:
    """∇_θ of the loss *measured on the device*, from loss queries alone (finite differences or SPSA).

    All photonic controls form one vector θ; each objective evaluation is one device forward of the whole
    network at a trial θ, on the present batch. A probe is moved to the nearest allowed setting by ``project``
    (the guard would refuse it otherwise), which makes the difference one-sided at a limit. Digital parameters
    get no gradient here: this source is only used for SAT's ascent, which never perturbs them.
    """

    runner: LayerRunner
    estimator: GradientEstimator
    project: Callable[[Tensor], Tensor]

    def __call__(self, net: PhotonicNet, x: Tensor, y: Tensor) -> None:
        thetas = list(net.photonic_parameters())
        sizes = [t.numel() for t in thetas]
        flat = torch.cat([t.detach().reshape(-1) for t in thetas])

        def device_loss(trial: Tensor) -> float:
            parts = [self.project(p.view_as(t)) for p, t in zip(trial.split(sizes), thetas, strict=True)]
            with torch.no_grad():
                logits = _forward_with(net, x, self.runner, parts)
            return float(F.cross_entropy(logits, y))

        estimate = self.estimator(device_loss, flat).grad
        for theta, part in zip(thetas, estimate.split(sizes), strict=True):
            grad = part.view_as(theta).to(theta.dtype)
            theta.grad = grad if theta.grad is None else theta.grad + grad


def _forward_with(net: PhotonicNet, x: Tensor, runner: LayerRunner, thetas: list[Tensor]) -> Tensor:
    """``net(x)`` with layer ``i`` evaluated at ``thetas[i]`` instead of its own parameter."""
    return net(x, lambda index, h, _own: runner(index, h, thetas[index]))
