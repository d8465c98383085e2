"""An SLM's gray-level → phase lookup table: the simulator's truth, the bench file's nominal and a calibration's fit.

A phase SLM shows 8-bit gray levels; the liquid crystal turns each into a phase through a curve that is
neither linear nor exactly 2π long, differs between SLMs and with the wavelength. Controls are phases,
so a System shows ``to_gray(θ)``: the gray level whose phase is nearest to ``θ`` on the circle. Only
phase differences are observable, so comparisons between tables ignore a common offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LEVELS = 256
"""Gray levels of an 8-bit SLM."""

PHASE_RANGE = (0.0, 2 * math.pi)
"""Mask phases (rad) an SLM shows in one period of its gray levels; its LUT wraps any other phase into it."""


def wrap(phase: Tensor) -> Tensor:
    """Phase folded into ``[−π, π)``."""
    return torch.remainder(phase + math.pi, 2 * math.pi) - math.pi


@dataclass(frozen=True)
class PhaseLUT:
    """Phase (rad) one SLM pixel shows at each gray level: ``phase[g]``, ``(levels,)`` float64."""

    phase: Tensor

    def __post_init__(self) -> None:
        if self.phase.ndim != 1 or self.phase.numel() < 2 or not bool(torch.isfinite(self.phase).all()):
            raise ValueError(f"a LUT is a finite 1-D table of at least 2 phases, got shape {tuple(self.phase.shape)}")

    @classmethod
    def linear(cls, range_rad: float = 2 * math.pi, levels: int = LEVELS) -> PhaseLUT:
        """The vendor's nominal table ``φ(g) = range·g/levels`` (gray ``levels`` would reach ``range``)."""
        return cls(torch.arange(levels, dtype=torch.float64) * (range_rad / levels))

    @classmethod
    def power_law(cls, max_rad: float, gamma: float, levels: int = LEVELS) -> PhaseLUT:
        """``φ(g) = max·(g/(levels−1))^γ``: a smooth, gamma-like liquid-crystal response."""
        return cls(max_rad * (torch.arange(levels, dtype=torch.float64) / (levels - 1)) ** gamma)

    @property
    def levels(self) -> int:
        return self.phase.numel()

    def to_phase(self, gray: Tensor) -> Tensor:
        """Phases (float64, on ``gray``'s device) of integer gray levels ``gray``."""
        return self.phase.to(gray.device)[gray.long()]

    def to_gray(self, phase: Tensor, gray_range: tuple[int, int] | None = None) -> Tensor:
        """The gray level (uint8 for 8-bit tables, else int64) whose phase is nearest to ``phase`` modulo 2π.

        Only levels inside ``gray_range`` ``[min, max]`` (an SLM's allowed gray levels; default: the whole
        table) are candidates, so no level outside it is ever produced. Phases the SLM cannot reach (a table
        shorter than 2π, or a narrowed range) go to the nearest reachable level on the circle.
        """
        low, high = (0, self.levels - 1) if gray_range is None else gray_range
        if not 0 <= low <= high < self.levels:
            raise ValueError(f"gray range [{low}, {high}] is not within this table's levels 0..{self.levels - 1}")
        table = self.phase[low : high + 1].to(phase.device, torch.float64)
        distance = wrap(phase.to(torch.float64).unsqueeze(-1) - table).abs()
        gray = distance.argmin(dim=-1) + low
        return gray.to(torch.uint8) if self.levels <= LEVELS else gray

    def rms_difference(self, other: PhaseLUT) -> float:
        """RMS of the wrapped difference to ``other`` after removing their mean offset (unobservable)."""
        if other.levels != self.levels:
            raise ValueError(f"LUTs of {self.levels} and {other.levels} levels cannot be compared")
        difference = wrap(self.phase - other.phase)
        offset = torch.atan2(difference.sin().mean(), difference.cos().mean())
        return float(wrap(difference - offset).square().mean().sqrt())
