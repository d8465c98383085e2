"""A fast stand-in device for training tests: the chip physics itself, with read noise and query counts.

Training only sees a :class:`~labsat.training.physical.PhysicalLayer`, so a device made of the simulator's
ground-truth physics (one chip of the default bench's design) exercises every method exactly as a bench
would, without the guard's ramps and the per-tile instrument traffic that make a simulated bench slow.
The twin is the same physics with *nominal* parameters (no fabrication scatter): a realistic model error.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from labsat.physics.mrr import MRRBankModel, MRRChipParams
from labsat.readout import QueryStats
from labsat.simulators.mrr import MRRSimConfig, chip_params
from labsat.training.physical import PhysicalLayer

NOMINAL = {"fab_sigma_nm": 0.0, "fwhm_spread": 0.0, "efficiency_spread": 0.0, "resistance_spread": 0.0}


def design_chip(seed: int = 7, **changes: float) -> MRRChipParams:
    """A chip of the default bench's design (``changes`` override simulator settings)."""
    return chip_params(MRRSimConfig().model_copy(update=changes), 8, 8, seed, dtype=torch.float32)


class ChipDevice:
    """``forward(x, controls)`` on a fixed chip, plus Gaussian read noise ``σ·max(x)``; counts like a System.

    ``control_noise`` (volts) scatters every control afresh in every forward, as a jittery heater supply would.
    """

    control_range = (0.0, 4.0)

    def __init__(self, params: MRRChipParams, noise: float = 0.0, seed: int = 0, control_noise: float = 0.0) -> None:
        self.model = MRRBankModel(params)
        self.noise = noise
        self.control_noise = control_noise
        self.generator = torch.Generator().manual_seed(seed)
        self.stats = QueryStats()
        self.delta_t_k = 0.0

    def forward(self, x: Tensor, controls: Tensor) -> Tensor:
        assert bool((x >= 0).all()), "a photonic layer's inputs are intensities"
        tiles = math.ceil(controls.shape[0] / 8) * math.ceil(controls.shape[1] / 8)
        self.stats.forwards += 1
        self.stats.programs += tiles
        self.stats.samples += tiles * x.shape[0]
        self.stats.bench_time_s += tiles * (0.01 + 1e-6 * x.shape[0])
        with torch.no_grad():
            if self.control_noise:
                controls = controls + torch.randn(controls.shape, generator=self.generator) * self.control_noise
            y = self.model.layer(x, controls, self.delta_t_k)
            noise = torch.randn(y.shape, generator=self.generator) * self.noise
            return y + noise * x.amax(dim=1, keepdim=True)


def fake_physical(
    *, noise: float = 0.0, twin: str = "nominal", control_noise: float = 0.0
) -> tuple[PhysicalLayer, ChipDevice]:
    """A PhysicalLayer over a :class:`ChipDevice`; the twin is ``"nominal"`` or the ``"truth"`` itself, and drifts."""
    device = ChipDevice(design_chip(), noise, control_noise=control_noise)
    model = MRRBankModel(design_chip(7, **NOMINAL) if twin == "nominal" else design_chip())
    return PhysicalLayer.from_system(device, model.layer), device
