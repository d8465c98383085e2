"""FD-SAT: sharpness-aware training against a disturbance that no model differentiates (mask misalignment).

SAT flattens the loss in the trainable controls θ. A free-space system also has parameters nobody trains and
nobody can model well: where the phase masks sit (rotation, shift, scale). The SAT paper (Xu et al., §1.3 of
the digest) finds an adversarial value of such a parameter ``p`` with one extra forward per step::

    δ     ~ U(0, δmax]                          one-sided, random magnitude (± with a random sign if two-sided)
    ĝ     = (L(θ, p + δ) − L(θ, p)) / δ         forward difference, measured at the unperturbed θ
    p_adv = p + δ + η·ĝ                         random step plus an un-normalised ascent step

and takes SAT's descent gradient there: ``∇θ L(θ + ε, p_adv)``. ``p`` is an *offset* from wherever the
layer's disturbance parameters are (:attr:`PhysicalLayer.disturbed`), and it is reset every step, so the
optimizer never trains a misaligned layer into its state. The random δ alone already acts like training
on random misalignments; η·ĝ pushes further where the loss rises fastest. The paper's δ is one-sided, so
the masks learn to tolerate a turn one way only; ``two_sided`` draws the sign of δ at random too, for a
disturbance whose sign nobody knows in advance (a mount turns either way), and η·ĝ still points uphill.

The loss is probed where the method measures its loss: through the twin for a twin ascent (in-silico SAT,
no device query), on the device otherwise (one more device forward per step, at the moved masks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from labsat.training.methods import GradientSource, Method, MethodError
from labsat.training.network import LayerRunner, PhotonicNet
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner, twin_runner

IN_SILICO_BASES = ("bp-control", "nat")
"""Methods whose gradients never query the device during a step (NAT only measures its noise, once, up front)."""


def require_in_silico(method: Method, moved: str, alternative: str) -> None:
    """Refuse FD-SAT with a method that would measure the device at a disturbance nothing on the bench can set.

    ``moved`` says what the disturbance is ("the 2-mask D2NN with its masks moved"); ``alternative`` why the bench
    cannot show it ("nothing on a bench can turn or shift its mask SLMs").
    """
    if method.base not in IN_SILICO_BASES or method.ascent != "twin":
        raise MethodError(
            f"FD-SAT with {method.name} (ascent {method.ascent}) measures {moved}, and {alternative}: train FD-SAT "
            f"in silico on the calibrated twin (method sat or nat+sat, ascent twin), or {method.name} without FD-SAT"
        )


@dataclass(frozen=True)
class Adversary:
    """One finite-difference probe: the random step ``δ``, the slope ``ĝ`` it measured, the offset used."""

    delta: float
    slope: float
    offset: float


def adversarial_offset(
    loss_at: Callable[[float], float],
    loss: float,
    delta_max: float,
    gain: float,
    generator: torch.Generator,
    two_sided: bool = False,
) -> Adversary:
    """``p_adv − p = δ + η·(L(p + δ) − L(p))/δ`` with ``δ ~ U(0, δmax]``; ``loss_at(o)`` is ``L(p + o)``.

    δ is drawn from (0, δmax] rather than [0, δmax) so the difference quotient never divides by zero;
    ``two_sided`` flips its sign with probability ½.
    """
    delta = delta_max * (1.0 - float(torch.rand((), generator=generator, dtype=torch.float64)))
    if two_sided and float(torch.rand((), generator=generator, dtype=torch.float64)) < 0.5:
        delta = -delta
    slope = (loss_at(delta) - loss) / delta
    return Adversary(delta, slope, delta + gain * slope)


class FDSAT:
    """FD-SAT for one training run: probes the disturbance and moves the method's descent source there.

    ``source(physical)`` builds the method's gradient source on a given physical layer (the trainer's own
    factory), so PAT descends with the device at the adversarial offset and in-silico SAT with the twin.
    The random stream is reseeded by the trainer (per epoch), which keeps resumed runs on the same draws.
    """

    def __init__(
        self,
        physical: PhysicalLayer,
        method: Method,
        source: Callable[[PhysicalLayer], GradientSource],
        *,
        disturbance: str,
        delta_max: float,
        gain: float,
        two_sided: bool = False,
    ) -> None:
        if not method.sat:
            raise MethodError(f"FD-SAT finds the adversarial disturbance for a SAT step; {method.name!r} has none")
        if method.base == "dat":
            raise MethodError("FD-SAT does not combine with DAT: its correctors are fitted to the undisturbed layer")
        if physical.disturbed is None:
            raise MethodError("FD-SAT needs a physical layer with disturbance parameters (PhysicalLayer.disturbed)")
        if delta_max <= 0:
            raise MethodError(f"FD-SAT's delta_max must be positive, got {delta_max}")
        physical.disturbed({disturbance: 0.0})  # an unknown name fails here, not mid-run
        self.physical = physical
        self.source = source
        self.disturbance = disturbance
        self.delta_max = delta_max
        self.gain = gain
        self.two_sided = two_sided
        self.probe: Callable[[PhysicalLayer], LayerRunner] = twin_runner if method.ascent == "twin" else device_runner
        self.generator = torch.Generator()
        self.last: Adversary | None = None

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def moved(self, offset: float) -> PhysicalLayer:
        """The physical layer with the disturbance ``offset`` away from where it is."""
        assert self.physical.disturbed is not None
        return self.physical.disturbed({self.disturbance: offset})

    def descent_source(self, net: PhotonicNet, x: Tensor, y: Tensor, loss: Tensor | None) -> GradientSource:
        """The method's gradient source at the adversarial disturbance, probed at the present (unperturbed) θ.

        ``loss`` is the batch loss the ascent source measured at θ (None for FD/SPSA ascents, which measure
        none: it is probed then, one more forward).
        """
        reference = self._loss(self.physical, net, x, y) if loss is None else float(loss)
        self.last = adversarial_offset(
            lambda offset: self._loss(self.moved(offset), net, x, y),
            reference,
            self.delta_max,
            self.gain,
            self.generator,
            self.two_sided,
        )
        return self.source(self.moved(self.last.offset))

    def _loss(self, physical: PhysicalLayer, net: PhotonicNet, x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(net(x, self.probe(physical)), y))
