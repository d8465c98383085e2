"""Simulated saturable-absorber optical layer: an SLM matrix–vector multiplier followed by an absorber.

One layer of the all-optical network of Spall, Guo and Lvovsky (Adv. Photon. 7, 016004 (2025)): the input
vector ``x`` is displayed as field amplitudes, an SLM carrying the weights ``W ∈ [−1, 1]`` and a cylindrical
lens form ``z = W x``, and each output field passes a saturable absorber (:mod:`labsat.physics.saturable`)
before a camera reads ``a = SA(z)``. The same optics run backwards: a weak probe carrying the error
``g = ∂L/∂a`` enters at the camera plane, is attenuated by the absorber that the pump (``x``, displayed again)
keeps saturated, is read out there as ``δ`` and continues back through the SLM, i.e. through ``Wᵀ``, to a
second camera that reads ``Wᵀδ``. That gives the layer's whole backward pass from two read-outs:

    ∂L/∂x ≈ Wᵀ δ,    ∂L/∂W ≈ δ xᵀ    (summed over the batch),    δ = T(s) ⊙ g,

where the exact chain rule has ``SA'(z) ⊙ g`` instead of ``T(s) ⊙ g``. No model of the absorber is used
anywhere: the physics sits in the light.

The absorber's response is taken as instantaneous (an atomic vapour responds in nanoseconds), so the probe
only sees the saturation while the pump is on: a backward pass displays ``x`` and ``W`` again and is a device
pass of its own, counted like a forward one.

Non-idealities, all seeded per device:

* every read-out (``a`` forward; ``δ`` and ``Wᵀδ`` backward) carries Gaussian detector noise of
  ``read_noise`` times the largest magnitude in that sample's vector (an auto-ranged camera);
* the SLM shows ``2**slm_bits`` evenly spaced levels over [−1, 1], so the realised weights are quantised,
  forwards and backwards alike (the same pixels are passed both ways).

Read-outs are signed field amplitudes (coherent detection against a reference beam), as the amplitude
encoding of the network requires. The device itself is stateless between calls; it keeps only its noise
stream and the :class:`~labsat.readout.QueryStats` a training run reads.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from labsat.physics.saturable import probe_transmission, saturation, transmit
from labsat.readout import QueryStats


class SaturableSimConfig(BaseModel):
    """Physics and instruments of a simulated SLM + saturable-absorber layer (amplitudes in units of √I_sat)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha0: float = Field(10.0, ge=0, description="Small-signal optical depth α0 of the absorber.")
    i_sat: float = Field(1.0, gt=0, description="Saturation intensity I_sat, in (input amplitude)² units.")
    read_noise: float = Field(0.01, ge=0, description="Detector noise std, relative to each sample's full scale.")
    slm_bits: int | None = Field(8, ge=1, le=16, description="SLM levels 2**bits over [−1, 1]; None: continuous.")
    slm_settle_s: float = Field(0.02, ge=0, description="Time to show a new weight pattern on the SLM.")
    exposure_s: float = Field(0.001, ge=0, description="Camera exposure per sample (one read-out frame).")


class SaturableLayerSimulator:
    """One SLM + lens MVM + saturable absorber, with a pump (forward) and a probe (backward) pass.

    ``forward`` and ``backward`` take the weights as controls, so any ``(out, in)`` layer runs on it (the
    SLM shows that block); the training code's :class:`~labsat.training.physical.PhysicalLayer` wraps both.
    ``exact_layer`` is the noiseless pump transmission as a differentiable function (quantisation passed
    straight through): what the "exact gradient" baselines differentiate.
    """

    control_range = (-1.0, 1.0)

    def __init__(self, config: SaturableSimConfig | None = None, seed: int = 0) -> None:
        self.config = config or SaturableSimConfig()
        self.seed = seed
        self.stats = QueryStats()
        self._noise = torch.Generator().manual_seed(seed)

    def displayed(self, weights: Tensor) -> Tensor:
        """The weights the SLM realises: ``weights`` clipped to [−1, 1] and rounded to its levels.

        Differentiable straight through (gradient 1), the usual convention for a quantised control.
        """
        bits = self.config.slm_bits
        if bits is None:
            return weights
        steps = 2**bits - 1
        low, high = self.control_range
        levels = ((weights.clamp(low, high) - low) / (high - low) * steps).round() / steps * (high - low) + low
        return weights + (levels - weights).detach()

    def exact_layer(self, x: Tensor, weights: Tensor) -> Tensor:
        """``SA(W x)`` without noise: the true physics of a pump pass, differentiable in ``x`` and ``W``."""
        self._check(x, weights)
        return transmit(x @ self.displayed(weights).T, self.config.alpha0, self.config.i_sat)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        """Pump pass: the camera's read-out of ``SA(W x)`` ``(B, out)``, with detector noise."""
        with torch.no_grad():
            self._count(x)
            return self.read_out(self.exact_layer(x, weights))

    def backward(self, x: Tensor, weights: Tensor, grad_out: Tensor) -> tuple[Tensor, Tensor]:
        """Probe pass at pump ``x``: ``(Wᵀδ (B, in), δᵀx (out, in))`` from the read-outs of ``δ`` and ``Wᵀδ``.

        ``grad_out`` ``(B, out)`` is ``∂L/∂a``, sent in as the probe. ``δ`` continues optically into the SLM,
        so the second camera sees the noiseless ``δ`` through ``Wᵀ`` plus its own noise; the weight
        gradient is the outer product of the read-out ``δ`` and the input the pump displayed.
        """
        self._check(x, weights)
        if grad_out.shape != (x.shape[0], weights.shape[0]):
            raise ValueError(
                f"the probe must be (batch, out) = {(x.shape[0], weights.shape[0])}, got {tuple(grad_out.shape)}"
            )
        with torch.no_grad():
            self._count(x)
            shown = self.displayed(weights)
            s = saturation(x @ shown.T, self.config.i_sat)
            delta = probe_transmission(s, self.config.alpha0) * grad_out
            grad_x = self.read_out(delta @ shown)
            return grad_x, self.read_out(delta).T @ x

    def _check(self, x: Tensor, weights: Tensor) -> None:
        if weights.ndim != 2 or x.ndim != 2 or x.shape[1] != weights.shape[1]:
            raise ValueError(
                f"a layer needs x (batch, in) and weights (out, in) with the same in, "
                f"got x {tuple(x.shape)} and weights {tuple(weights.shape)}"
            )

    def read_out(self, signal: Tensor) -> Tensor:
        """A camera read-out: ``signal`` plus noise ``read_noise · max|signal|`` per sample."""
        if self.config.read_noise == 0:
            return signal
        scale = signal.abs().amax(dim=1, keepdim=True)
        noise = torch.randn(signal.shape, generator=self._noise, dtype=signal.dtype).to(signal.device)
        return signal + self.config.read_noise * scale * noise

    def _count(self, x: Tensor) -> None:
        """One device pass: one SLM frame, one camera frame per sample."""
        self.stats.forwards += 1
        self.stats.programs += 1
        self.stats.samples += x.shape[0]
        self.stats.bench_time_s += self.config.slm_settle_s + self.config.exposure_s * x.shape[0]
