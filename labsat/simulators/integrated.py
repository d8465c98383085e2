"""What every simulated integrated chip (MRR bank, MZI mesh) shares: config, seed, clock, noise, modulators."""

from __future__ import annotations

from typing import Generic, TypeVar

import torch
from torch import Tensor

from labsat.clock import Clock
from labsat.physics.compute import default_device
from labsat.simulators.detection import InstrumentConfig
from labsat.simulators.draws import stream_seeds
from labsat.simulators.light import SimLightSource

C = TypeVar("C", bound=InstrumentConfig)


class IntegratedChipSimulator(Generic[C]):
    """What every simulated integrated chip shares: its config, seed, clock and torch device, the noise stream
    of its seed, and the drives of its ``inputs`` modulators (set by the modulator instrument, read in batches).

    Generic in its config, so a subclass's ``self.config`` is its own physics' config (``MRRSimConfig``...).
    """

    def __init__(
        self,
        config: C,
        inputs: int,
        seed: int,
        clock: Clock,
        device: torch.device | str | None,
        dtype: torch.dtype,
    ) -> None:
        self.config: C = config
        self.seed = seed
        self.clock = clock
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype
        self._noise = torch.Generator(device=self.device).manual_seed(stream_seeds(seed)[1])
        self._modulator_volts = torch.zeros(inputs, device=self.device, dtype=dtype)
        self.light: SimLightSource | None = None
        """The bench's simulated laser, when it has one: the input light follows its power and output state."""

    @property
    def modulator_volts(self) -> Tensor:
        """Present modulator drives ``(inputs,)``."""
        return self._modulator_volts.clone()

    def set_modulators(self, positions: Tensor, volts: Tensor) -> None:
        """Drive modulator channels ``positions`` with ``volts`` (not quantised: the heater DAC is the fine one)."""
        self._modulator_volts[positions.to(self.device)] = volts.to(self.device, self.dtype)

    def _as_batch(self, mod_volts: Tensor) -> Tensor:
        mod_volts = torch.as_tensor(mod_volts, device=self.device, dtype=self.dtype)
        inputs = self._modulator_volts.shape[0]
        if mod_volts.dim() != 2 or mod_volts.shape[1] != inputs:
            raise ValueError(f"modulator volts must be (B, {inputs}), got {tuple(mod_volts.shape)}")
        return mod_volts

    def _randn(self, shape: tuple[int, ...] | torch.Size) -> Tensor:
        return torch.randn(shape, generator=self._noise, device=self.device, dtype=self.dtype)
