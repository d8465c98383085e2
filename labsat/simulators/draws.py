"""The random draws of a simulated chip: one bench seed, independent streams for the chip and its noise.

Same seed, same chip and same noise on any device: draws happen on the CPU in a fixed order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def stream_seeds(seed: int) -> tuple[int, int]:
    """Independent seeds for the chip draw and the noise of bench seed ``seed`` (any int, negative too)."""
    chip, noise = np.random.SeedSequence(seed % 2**64).spawn(2)
    return int(chip.generate_state(1, np.uint64)[0] >> 1), int(noise.generate_state(1, np.uint64)[0] >> 1)


def relative_spread(generator: torch.Generator, shape: tuple[int, ...], relative: float) -> Tensor:
    """``1 + relative·N(0, 1)`` (float64, CPU), clipped at 0.1 so an extreme draw cannot flip a sign."""
    return (1 + relative * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp_min(0.1)
