"""Dual adaptive training (Zheng et al., Nat. Mach. Intell. 2023): a twin that learns its own error online.

Each photonic layer gets a small residual *corrector* that adds what the twin gets wrong. Every batch:

1. the network runs on the device, one PAT call per layer, and each layer's measured input and output are
   kept (:func:`~labsat.training.pat.pat_runner`'s observer);
2. **(a)** the correctors are fitted to those measurements, controls frozen;
3. **(b)** the task loss, computed on the measured outputs, is back-propagated through the *corrected*
   twin at the measured inputs (the measured output is substituted straight through), controls only.

The measurement of step 1 serves both (a) and (b): one device forward per layer per batch, like PAT. The
backward model of step (b) is exactly PAT's with the corrected twin, which is why DAT reuses the PAT
autograd function and only adds the fit between the forward and the backward pass.

A corrector sees the layer's inputs and the twin's outputs, both divided by the sample's input scale, and
its output is multiplied back: a physical layer is linear in its input intensities, and the corrector
keeps that scale equivariance, so it does not have to learn it. Its last layer starts at zero, so an
unfitted corrector leaves the twin unchanged.
"""

from __future__ import annotations

from functools import reduce
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labsat.training.nat import input_scale
from labsat.training.network import LayerRunner, PhotonicNet
from labsat.training.pat import pat_runner
from labsat.training.physical import LayerFn, PhysicalLayer


class Corrector(nn.Module):
    """``y_twin + s·MLP([x/s, y_twin/s])`` with ``s = max(x)`` per sample."""

    def __init__(self, in_features: int, out_features: int, hidden: int) -> None:
        super().__init__()
        last = nn.Linear(hidden, out_features)
        nn.init.zeros_(last.weight)  # a fresh corrector leaves the twin's output as it is
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(nn.Linear(in_features + out_features, hidden), nn.Tanh(), last)

    def forward(self, x: Tensor, y_twin: Tensor) -> Tensor:
        scale = input_scale(x)
        return y_twin + scale * self.mlp(torch.cat([x / scale, y_twin / scale], dim=1))


class DualAdaptive:
    """The DAT gradient source: one measurement per layer, corrector fit (a), control gradient (b)."""

    def __init__(
        self, physical: PhysicalLayer, sizes: tuple[int, ...], *, hidden: int, lr: float, fit_steps: int
    ) -> None:
        self.physical = physical
        self.fit_steps = fit_steps
        self.correctors = nn.ModuleList(Corrector(inp, out, hidden) for inp, out in pairwise(sizes))
        self.optimizer = torch.optim.Adam(self.correctors.parameters(), lr=lr)

    def corrected(self, index: int) -> LayerFn:
        """Layer ``index``'s corrected twin ``(x, θ) -> y``."""
        corrector = self.correctors[index]
        return lambda x, theta: corrector(x, self.physical.twin_layer(x, theta))

    def twin_runner(self) -> LayerRunner:
        """Every layer through its corrected twin, no device (SAT's ascent from the twin, in a DAT run)."""
        return lambda index, x, theta: self.corrected(index)(x, theta)

    def __call__(self, net: PhotonicNet, x: Tensor, y: Tensor) -> Tensor:
        measurements: list[tuple[int, Tensor, Tensor, Tensor]] = []
        run = pat_runner(self.physical, self.corrected, lambda *m: measurements.append(m))
        loss = F.cross_entropy(net(x, run), y)
        self.fit(measurements)  # (a) on the measurement just taken
        loss.backward()  # (b) through the refitted corrected twin, at the same measured inputs
        return loss.detach()

    def fit(self, measurements: list[tuple[int, Tensor, Tensor, Tensor]]) -> float:
        """``fit_steps`` Adam steps of the correctors on ``MSE(corrected twin, measured)``; returns the last loss."""
        with torch.no_grad():  # the twin part does not change during the fit: evaluate it once
            cases = [(i, x, self.physical.twin_layer(x, theta), measured) for i, x, theta, measured in measurements]
        loss = torch.zeros(())
        for _ in range(self.fit_steps):
            self.optimizer.zero_grad()
            loss = reduce(
                torch.add,
                (
                    F.mse_loss(self.correctors[i](x, y_twin), measured) / measured.square().mean().clamp_min(1e-12)
                    for i, x, y_twin, measured in cases
                ),
            )
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {"correctors": self.correctors.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.correctors.load_state_dict(state["correctors"])
        self.optimizer.load_state_dict(state["optimizer"])
