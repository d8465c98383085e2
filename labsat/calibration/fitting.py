"""Batched least-squares fits used by the procedures: Lorentzian peaks and sin² transfer curves.

Each fit runs on many curves at once (every ring of a column, every modulator), in float64 torch, with
no SciPy: a calibration of 64 rings is a handful of small batched linear solves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def lorentzian(x: Tensor, center: Tensor, fwhm: Tensor) -> Tensor:
    """``1 / (1 + (2(x − center)/fwhm)²)`` with ``center``/``fwhm`` broadcast over the last axis of ``x``."""
    u = 2 * (x - center.unsqueeze(-1)) / fwhm.unsqueeze(-1)
    return 1 / (1 + u.square())


@dataclass
class PeakFit:
    """``y ≈ baseline + amplitude · lorentzian(x, center, fwhm)`` per curve, with the fit residual."""

    baseline: Tensor
    amplitude: Tensor
    center: Tensor
    fwhm: Tensor
    rms: Tensor


def _solve(matrix: Tensor, rhs: Tensor) -> Tensor:
    """Batched solve of tiny systems in NumPy: torch sends a batch of 4×4 solves through its thread pool,
    which on a busy machine costs a hundred times the arithmetic."""
    return torch.from_numpy(np.linalg.solve(matrix.numpy(), rhs.numpy()))


def fit_peaks(x: Tensor, y: Tensor, iterations: int = 100, tolerance: float = 1e-12) -> PeakFit:
    """Fit a Lorentzian peak to every row of ``y`` ``(n, N)`` sampled at ``x`` ``(N,)`` (Levenberg–Marquardt).

    Starts from the highest sample, the median as baseline and the half-maximum width, which is close
    enough for LM whenever a peak is visible; deciding whether it is (and refusing otherwise) is the
    caller's job, since only the caller knows the noise.
    """
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    step = (x[-1] - x[0]).abs() / max(len(x) - 1, 1)
    baseline = y.median(dim=-1).values
    top = y.argmax(dim=-1)
    amplitude = y.gather(-1, top.unsqueeze(-1)).squeeze(-1) - baseline
    above = (y - baseline.unsqueeze(-1)) > amplitude.unsqueeze(-1) / 2
    fwhm = (above.sum(dim=-1).to(torch.float64) * step).clamp_min(step)
    theta = torch.stack([baseline, amplitude, x[top], fwhm], dim=-1)
    damping = torch.full_like(baseline, 1e-3)

    def residual(params: Tensor) -> Tensor:
        b, a, c, w = params.unbind(-1)
        return b.unsqueeze(-1) + a.unsqueeze(-1) * lorentzian(x, c, w) - y

    cost = residual(theta).square().sum(-1)
    for _ in range(iterations):
        b, a, c, w = theta.unbind(-1)
        u = 2 * (x - c.unsqueeze(-1)) / w.unsqueeze(-1)
        shape = 1 / (1 + u.square())
        jacobian = torch.stack(
            [
                torch.ones_like(shape),
                shape,
                a.unsqueeze(-1) * 4 * u * shape.square() / w.unsqueeze(-1),
                a.unsqueeze(-1) * 2 * u.square() * shape.square() / w.unsqueeze(-1),
            ],
            dim=-1,
        )
        r = residual(theta)
        # Products summed by hand: CPU bmm over a batch of tiny matrices stalls on thread hand-offs.
        normal = (jacobian.unsqueeze(-1) * jacobian.unsqueeze(-2)).sum(-3)
        gradient = (jacobian * r.unsqueeze(-1)).sum(-2).unsqueeze(-1)
        diagonal = torch.diag_embed(normal.diagonal(dim1=-2, dim2=-1) * damping.unsqueeze(-1))
        delta = _solve(normal + diagonal + 1e-30 * torch.eye(4, dtype=x.dtype), -gradient).squeeze(-1)
        trial = theta + delta
        trial[..., 3] = trial[..., 3].abs().clamp_min(step / 10)
        trial_cost = residual(trial).square().sum(-1)
        better = trial_cost < cost
        gain = ((cost - trial_cost) / cost.clamp_min(1e-300)).clamp_min(0)
        theta = torch.where(better.unsqueeze(-1), trial, theta)
        cost = torch.where(better, trial_cost, cost)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-9, 1e9)
        if bool((gain < tolerance).all()) and bool((damping < 1e-2).all()):
            break
    b, a, c, w = theta.unbind(-1)
    return PeakFit(baseline=b, amplitude=a, center=c, fwhm=w, rms=(cost / y.shape[-1]).sqrt())


@dataclass
class Sin2Fit:
    """``y[r] ≈ offset[r] + amplitude[r] · sin²(πV / (2·v_pi))`` per curve, one ``v_pi`` shared by all rows."""

    v_pi: Tensor  # (n,)
    amplitude: Tensor  # (n, rows)
    offset: Tensor  # (n, rows)
    rms: Tensor  # (n,)


def _sin2_profile(volts: Tensor, y: Tensor, v_pi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Best amplitude/offset per row for each candidate ``v_pi`` ``(n, K)``; returns (cost, amplitude, offset)."""
    basis = torch.sin(math.pi * volts / (2 * v_pi.unsqueeze(-1))).square()  # (n, K, N)
    mean_b = basis.mean(-1, keepdim=True)
    mean_y = y.mean(-1, keepdim=True)  # (n, rows, 1)
    centered_b = (basis - mean_b).unsqueeze(-2)  # (n, K, 1, N)
    centered_y = (y - mean_y).unsqueeze(-3)  # (n, 1, rows, N)
    variance = centered_b.square().sum(-1).clamp_min(1e-30)  # (n, K, 1)
    amplitude = (centered_b * centered_y).sum(-1) / variance  # (n, K, rows)
    offset = mean_y.squeeze(-1).unsqueeze(-2) - amplitude * mean_b  # (n, K, rows)
    residual = centered_y - amplitude.unsqueeze(-1) * centered_b
    return residual.square().sum((-1, -2)), amplitude, offset


def fit_sin2(volts: Tensor, y: Tensor, v_pi_range: tuple[float, float], candidates: int = 400) -> Sin2Fit:
    """Fit the half-wave voltage of each curve set ``y`` ``(n, rows, N)`` driven at ``volts`` ``(n, N)``.

    The model is linear in amplitude and offset, so only ``v_pi`` is searched: a grid over
    ``v_pi_range``, then golden-section refinement around the best grid point. Rows share ``v_pi``
    because they all see the same modulator; rows whose ring passes little light simply weigh little.
    """
    volts = volts.to(torch.float64)
    y = y.to(torch.float64)
    grid = torch.linspace(*v_pi_range, candidates, dtype=torch.float64).expand(volts.shape[0], -1)
    cost, _, _ = _sin2_profile(volts, y, grid)
    best = cost.argmin(-1)
    spacing = (v_pi_range[1] - v_pi_range[0]) / (candidates - 1)
    low = grid.gather(-1, best.unsqueeze(-1)).squeeze(-1) - spacing
    high = low + 2 * spacing
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        left = high - ratio * (high - low)
        right = low + ratio * (high - low)
        cost_lr, _, _ = _sin2_profile(volts, y, torch.stack([left, right], -1))
        keep_left = cost_lr[:, 0] < cost_lr[:, 1]
        high = torch.where(keep_left, right, high)
        low = torch.where(keep_left, low, left)
    v_pi = (low + high) / 2
    cost, amplitude, offset = _sin2_profile(volts, y, v_pi.unsqueeze(-1))
    return Sin2Fit(
        v_pi=v_pi,
        amplitude=amplitude.squeeze(-2),
        offset=offset.squeeze(-2),
        rms=(cost.squeeze(-1) / y[0].numel()).sqrt(),
    )


def rank_one(matrix: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``matrix ≈ row[:, None] · col[None, :]`` over the positive entries where ``mask`` holds.

    A least-squares fit of ``log matrix = a_r + b_c`` by alternating means, normalised so that ``col``
    has a geometric mean of 1. Rows or columns with no usable entry get 1 (nothing is known of them).
    """
    usable = mask & (matrix > 0)
    logs = torch.where(usable, matrix.clamp_min(1e-30).log(), torch.zeros_like(matrix))
    weight = usable.to(matrix.dtype)
    row = torch.zeros(matrix.shape[0], dtype=matrix.dtype)
    col = torch.zeros(matrix.shape[1], dtype=matrix.dtype)
    for _ in range(50):
        row = ((logs - col) * weight).sum(1) / weight.sum(1).clamp_min(1)
        col = ((logs - row.unsqueeze(1)) * weight).sum(0) / weight.sum(0).clamp_min(1)
        shift = col[weight.sum(0) > 0].mean() if bool((weight.sum(0) > 0).any()) else col.new_zeros(())
        col, row = col - shift, row + shift
    row = torch.where(weight.sum(1) > 0, row, torch.zeros_like(row))
    col = torch.where(weight.sum(0) > 0, col, torch.zeros_like(col))
    return row.exp(), col.exp()
