"""The saturable-absorber layer as a System: weights on an SLM, inputs on a second SLM, a camera behind the absorber.

One layer of the all-optical network ``a = SA(W x)`` (:mod:`labsat.simulators.saturable` has the physics):
the weight SLM shows ``W`` ∈ [−1, 1] as gray levels (``w = (g − 127)/127``, so zero is a level and ±1
are 254 and 0), the input SLM shows each sample's field amplitudes (``x = full_scale · g/255``; the SLM
saturates above its full scale, and the twin models that clip too) and the camera reads the ``outputs``
fields the absorber passes. Both SLMs are written through the guard, so a frame
outside the bench file's gray limits never reaches the glass. A network layer smaller than the SLM uses
its top-left block: the unused weights are shown as zero and the unused inputs dark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from labsat.clock import Clock
from labsat.devices import BatchStreamer, Detector
from labsat.guard import GuardedSLM
from labsat.physics.saturable import WEIGHT_ZERO
from labsat.readout import QueryStats, measure_batch
from labsat.specs.saturable import SaturableSystemSpec

WEIGHT_RANGE = (-1.0, 1.0)


@dataclass
class SaturableSystem:
    """A saturable-absorber layer on a weight SLM, an input SLM and a camera, driven through the guard."""

    spec: SaturableSystemSpec
    weights: GuardedSLM
    input: GuardedSLM
    camera: Detector
    clock: Clock
    torch_device: torch.device
    streamer: BatchStreamer | None = None
    stats: QueryStats = field(default_factory=QueryStats)

    @property
    def inputs(self) -> int:
        return self.spec.inputs

    @property
    def outputs(self) -> int:
        return self.spec.outputs

    @property
    def control_range(self) -> tuple[float, float]:
        return WEIGHT_RANGE

    def weight_frame(self, weights: torch.Tensor) -> torch.Tensor:
        """The weight SLM's gray frame ``(outputs, inputs)`` showing ``weights`` ``(out, in)`` in its top-left block."""
        out, width = weights.shape
        if out > self.outputs or width > self.inputs:
            raise ValueError(
                f"a ({out}, {width}) layer does not fit this {self.spec.label} ({self.outputs} outputs, "
                f"{self.inputs} inputs)"
            )
        full = torch.zeros(self.outputs, self.inputs, device=weights.device)
        full[:out, :width] = weights.clamp(*WEIGHT_RANGE)
        # A weight beyond the SLM's allowed gray range shows as the nearest allowed level, never outside it.
        return torch.round(full * WEIGHT_ZERO + WEIGHT_ZERO).clamp(*self.weights.limits.gray).to(torch.uint8)

    def input_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Input SLM frames ``(B, 1, inputs)`` for field amplitudes ``x`` ``(B, in)``, clipped at the full scale."""
        scale = self.spec.input_full_scale
        if bool((x < 0).any()):
            raise ValueError("inputs to a saturable-absorber layer are input-SLM field amplitudes and must be ≥ 0")
        full = torch.zeros(x.shape[0], self.inputs, device=x.device)
        full[:, : x.shape[1]] = x / scale
        gray = torch.round(full.clamp(0.0, 1.0) * 255).clamp(*self.input.limits.gray)
        return gray.to(torch.uint8).unsqueeze(1)

    def program(self, weights: torch.Tensor) -> None:
        """Show ``weights`` on the weight SLM and wait for it to settle: one program."""
        started = self.clock.now()
        self.weights.show(self.weight_frame(weights.detach().to(torch.float32)))
        self.stats.programs += 1
        self.stats.bench_time_s += self.clock.now() - started

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """The camera's output fields ``(B, outputs)`` for input amplitudes ``x`` ``(B, in)`` at the shown weights."""
        frames = self.input_frames(x.detach().to(torch.float32))
        readings = measure_batch(self.input, self.camera, self.streamer, frames, self.clock, self.stats)
        return readings.to(self.torch_device)

    def forward(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """``(B, in)`` input amplitudes → ``(B, out)`` absorber output fields, weights ``controls`` ``(out, in)``."""
        if x.ndim != 2 or controls.ndim != 2 or x.shape[1] != controls.shape[1]:
            raise ValueError(f"need x (B, in) and weights (out, in), got {tuple(x.shape)} and {tuple(controls.shape)}")
        self.program(controls)
        y = self.measure(x)[:, : controls.shape[0]]
        self.stats.forwards += 1
        return y
