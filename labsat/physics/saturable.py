"""Saturable absorber (SA): the all-optical nonlinearity whose pump–probe response is its own approximate gradient.

An absorber of small-signal optical depth ``α0`` bleaches as the light in it approaches the saturation
intensity ``I_sat``. In amplitude encoding (the field ``E`` carries the signal; Guo, Barrett, Whang, Lvovsky,
Photonics Research 9, B71 (2021), and every experiment script of theirs) a strong *pump* field leaves as

    E_out = E · exp(−(α0/2) / (1 + s)),    s = E² / I_sat,

and its exact derivative is ``dE_out/dE = T(s) · (1 + α0·s/(1+s)²)`` with ``T(s) = exp(−(α0/2)/(1+s))``.

A *weak probe* sent through the same absorber while the pump saturates it does not change the
saturation, so it is simply attenuated by ``T(s)``: the first factor of the derivative, without the
second. Sending the backpropagated error backwards through the absorber as such a probe therefore
multiplies it by ``T(s)`` where backpropagation would multiply by ``dE_out/dE``. The two differ by the
factor ``1 / (1 + α0·s/(1+s)²)`` (:func:`approximation_ratio`), which lies in (0, 1]: the optical gradient
is a *positive, state-dependent diagonal rescaling* of the true backpropagated error. No sign is ever
flipped, which is why training with it converges. The rescaling is worst at ``s = 1`` (``E² = I_sat``),
where the ratio is ``1 / (1 + α0/4)``: 0.80 at α0 = 1, 0.29 at α0 = 10, 0.12 at α0 = 30; it tends to 1 both
well below saturation (``s → 0``, a linear absorber) and well above it (``s → ∞``, a bleached one).

The functions are plain differentiable torch expressions, shared by the simulator (ground truth) and any
model of it, so an "exact" gradient is autograd through the same physics the device runs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_depth(alpha0: float) -> None:
    """Refuse an optical depth that is negative (a gain medium, not an absorber) or not finite."""
    if not (math.isfinite(alpha0) and alpha0 >= 0):
        raise ValueError(f"the optical depth alpha0 must be finite and ≥ 0, got {alpha0}")


def check_saturation_intensity(i_sat: float) -> None:
    """Refuse a saturation intensity that is not a finite positive number."""
    if not (math.isfinite(i_sat) and i_sat > 0):
        raise ValueError(f"the saturation intensity i_sat must be finite and > 0, got {i_sat}")


def saturation(field: Tensor, i_sat: float) -> Tensor:
    """``s = E² / I_sat``: how far the pump field ``E`` saturates the absorber (1: half bleached)."""
    check_saturation_intensity(i_sat)
    return field.square() / i_sat


def probe_transmission(s: Tensor, alpha0: float) -> Tensor:
    """``T(s) = exp(−(α0/2) / (1 + s))``: the amplitude transmission a weak probe sees at pump saturation ``s``.

    Also the pump's own amplitude transmission at that saturation, so ``E_out = E · T(s)``.
    """
    check_depth(alpha0)
    if bool((s < 0).any()):
        raise ValueError("the saturation s = E²/I_sat cannot be negative")
    return (-0.5 * alpha0 / (1 + s)).exp()


def transmit(field: Tensor, alpha0: float, i_sat: float) -> Tensor:
    """The pump's output field ``E · exp(−(α0/2)/(1 + E²/I_sat))`` (odd in ``E``: the sign of a field survives)."""
    return field * probe_transmission(saturation(field, i_sat), alpha0)


def derivative(field: Tensor, alpha0: float, i_sat: float) -> Tensor:
    """The exact ``dE_out/dE = T(s) · (1 + α0·s/(1+s)²)`` at pump field ``E`` (autograd of :func:`transmit`)."""
    s = saturation(field, i_sat)
    return probe_transmission(s, alpha0) * (1 + alpha0 * s / (1 + s).square())


def approximation_ratio(s: Tensor, alpha0: float) -> Tensor:
    """Probe transmission over exact derivative, ``1 / (1 + α0·s/(1+s)²)`` ∈ (0, 1]; smallest at ``s = 1``."""
    check_depth(alpha0)
    return 1 / (1 + alpha0 * s / (1 + s).square())


WEIGHT_ZERO = 127
"""The weight SLM's gray level of weight 0: weight ``w`` ∈ [−1, 1] is gray ``127 + 127 w`` (0..254)."""


def weights_of_gray(gray: Tensor) -> Tensor:
    """The weights in [−1, 1] a weight-SLM frame of gray levels shows (its amplitude LUT)."""
    return (gray.to(torch.float32) - WEIGHT_ZERO) / WEIGHT_ZERO
