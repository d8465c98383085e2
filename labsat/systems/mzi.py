"""The MZI mesh System: a coherent photonic layer ``x ↦ |U(θ) x|²`` made of device calls.

``forward(x, controls)`` programs the mesh's ``N(N−1)`` heaters (through the guard, ramped), waits for
them to settle, streams the batch of input amplitudes through the modulators and returns the output
intensities. Inputs are field amplitudes (real, non-negative: one laser, amplitude modulators), at most
``N`` of them (unused modes stay dark); outputs are the ``N`` mode intensities in units of one input's
full power, so a lossless mesh returns ``Σ_k y_k = Σ_j x_j²``.

Each sample is scaled by its largest amplitude before it is sent (the modulators only reach full power)
and the result scaled back by its square; the layer is homogeneous of degree 2 in ``x``, so this costs
nothing in accuracy and uses the detectors' full range. A logical layer is never larger than the mesh:
there is no tiling of a unitary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labsat.physics.mzi import MZIChipParams, MZIMeshModel, mzi_count
from labsat.readout import Readout
from labsat.specs.mzi import MZISystemSpec
from labsat.systems.mrr import HeaterChipSystem, program_heaters


@dataclass(kw_only=True)
class MZIMeshSystem(HeaterChipSystem):
    """An N-mode rectangular mesh driven through guarded devices."""

    spec: MZISystemSpec

    def __post_init__(self) -> None:
        self.readout = self.nominal_readout()

    def nominal_readout(self) -> Readout:
        """The bench file's readout (one ``V_π``, one gain): what a mesh calibration fits its readout against."""
        return Readout.nominal(self.spec, self.modes, self.modes, self.torch_device)

    @property
    def modes(self) -> int:
        return self.spec.modes

    @property
    def control_shape(self) -> tuple[int]:
        """Heater volts, one per channel: ``(N(N−1),)``."""
        return (2 * mzi_count(self.modes),)

    def nominal_params(self) -> MZIChipParams:
        """The design mesh (50:50 couplers, no phase errors, nominal ``P_π`` and R): the uncalibrated twin."""
        return MZIChipParams.nominal(
            self.modes, self.spec.p_pi_mw, self.spec.heater_resistance_ohm, device=self.torch_device
        )

    def nominal_twin(self) -> MZIMeshModel:
        return MZIMeshModel(self.nominal_params())

    # -- device-level building blocks (calibration uses these directly) ------------------------------

    def program(self, heater_volts: torch.Tensor) -> None:
        """Set all heaters to ``heater_volts`` ``(N(N−1),)``, then wait for them to settle."""
        if tuple(heater_volts.shape) != self.control_shape:
            raise ValueError(f"heater vector must be {self.control_shape}, got {tuple(heater_volts.shape)}")
        program_heaters(self.heaters, heater_volts, self.clock, self.spec.settle_time_s, self.stats)

    def measure(self, amplitudes: torch.Tensor) -> torch.Tensor:
        """Output intensities ``(B, N)`` for input amplitudes in [0, 1] ``(B, N)`` (power fraction ``x²``)."""
        return super().measure(amplitudes.square())

    # -- the layer operation -------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """``(B, in ≤ N)`` non-negative amplitudes → ``(B, N)`` intensities with heater volts ``controls``."""
        if x.ndim != 2 or not 1 <= x.shape[1] <= self.modes:
            raise ValueError(f"inputs must be (B, in) with in ≤ {self.modes}, got {tuple(x.shape)}")
        x = x.detach().to(self.torch_device, torch.float32)
        if bool((x < 0).any()):
            raise ValueError("inputs to a photonic layer are modulator amplitudes and must be non-negative")
        scale = x.amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        inputs = torch.zeros(x.shape[0], self.modes, device=self.torch_device)
        inputs[:, : x.shape[1]] = x / scale
        self.program(controls.detach().to(self.torch_device, torch.float32))
        y = self.measure(inputs)
        self.stats.forwards += 1
        return y * scale.square()
