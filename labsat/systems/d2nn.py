"""The D2NN System: a diffractive layer ``(x, phase masks) ↦ ten detector powers`` made of device calls.

``forward(x, controls)`` turns each mask's phases into gray levels through that SLM's LUT (the bench
file's nominal one until :meth:`D2NNSystem.use_luts` installs calibrated ones), shows the frames through
the guarded SLMs (the guard waits for each to settle), streams the batch of input images through the
input SLM and returns each detector region's power as a fraction of the input power, which is what
:meth:`DiffractiveModel.layer <labsat.physics.diffractive.DiffractiveModel.layer>` returns.

Inputs are intensities ``(B, side²)``. Each sample is scaled by its largest value before it is shown
(the input SLM only reaches full transmission) and shown as 8-bit gray levels; the model's outputs are
fractions of the input power, so the scale cancels. The detector volts are divided by the nominal
readout gain and by the shown image's power relative to a full-on frame, which the input optics fix
(the design twin computes it; no model parameter a calibration fits enters it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from labsat.clock import Clock
from labsat.devices import BatchStreamer, Detector
from labsat.errors import LabsatError
from labsat.guard import GuardedSLM, show_program
from labsat.physics.diffractive import DiffractiveModel, DiffractiveOptics
from labsat.physics.slm import PHASE_RANGE, PhaseLUT
from labsat.readout import QueryStats, measure_batch
from labsat.specs.d2nn import D2NNSystemSpec


@dataclass
class D2NNSystem:
    """A D2NN on phase-mask SLMs, with an input SLM and a detector-region camera, driven through the guard."""

    spec: D2NNSystemSpec
    masks: list[GuardedSLM]
    input: GuardedSLM
    detectors: Detector
    clock: Clock
    torch_device: torch.device
    streamer: BatchStreamer | None = None
    optics: DiffractiveOptics = field(init=False)
    luts: list[PhaseLUT] = field(init=False)
    stats: QueryStats = field(default_factory=QueryStats)

    def __post_init__(self) -> None:
        self.optics = self.spec.optics()
        grid, side = self.optics.grid, self.spec.input_side
        for slm, shape in [*((mask, (grid, grid)) for mask in self.masks), (self.input, (side, side))]:
            if slm.shape != shape:
                raise LabsatError(f"{slm.name} is a {slm.shape[0]}x{slm.shape[1]} SLM; this {self.label} needs {shape}")
        self.luts = self.nominal_luts()
        self._design = self.nominal_twin()

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def control_shape(self) -> tuple[int, int, int]:
        """Phases in rad, one per mask pixel: ``(masks, N, N)``."""
        return self.optics.control_shape

    @property
    def control_range(self) -> tuple[float, float]:
        return PHASE_RANGE

    def nominal_twin(self) -> DiffractiveModel:
        """The design optics, masks aligned: its ``layer(x, phases)`` is what ``forward`` aims to be."""
        return DiffractiveModel(self.optics, device=self.torch_device)

    def nominal_luts(self) -> list[PhaseLUT]:
        """The bench file's LUT of every mask SLM (linear over ``lut_phase_range_rad``); a calibration corrects it."""
        return [PhaseLUT.linear(self.spec.lut_phase_range_rad)] * len(self.masks)

    def use_luts(self, luts: Sequence[PhaseLUT]) -> None:
        """Show phases through these LUTs from now on (one per mask SLM, e.g. a calibration's)."""
        if len(luts) != len(self.masks):
            raise ValueError(f"{len(luts)} LUTs for {len(self.masks)} mask SLMs")
        self.luts = list(luts)

    # -- device-level building blocks (calibration uses these directly) ------------------------------

    def to_gray(self, controls: torch.Tensor) -> torch.Tensor:
        """Gray frames ``(masks, N, N)`` uint8 that show phases ``controls`` through the present LUTs.

        Each mask's levels come from its SLM's allowed gray range (``frame_limits.gray``) only.
        """
        if tuple(controls.shape) != self.control_shape:
            raise ValueError(f"controls must be {self.control_shape} phases, got {tuple(controls.shape)}")
        return torch.stack(
            [
                lut.to_gray(phase, gray_range=slm.limits.gray)
                for lut, phase, slm in zip(self.luts, controls, self.masks, strict=True)
            ]
        )

    def program(self, gray: torch.Tensor) -> None:
        """Show gray frames ``(masks, N, N)`` on the mask SLMs as one program, all or nothing (each settled)."""
        started = self.clock.now()
        if gray.shape[0] != len(self.masks):
            raise ValueError(f"a program has one frame per mask SLM ({len(self.masks)}), got {gray.shape[0]}")
        show_program(list(zip(self.masks, gray, strict=True)))
        self.stats.programs += 1
        self.stats.bench_time_s += self.clock.now() - started

    def input_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Input SLM frames ``(B, side, side)`` uint8 for intensities ``x`` ∈ [0, 1] ``(B, side²)``, inside the input
        SLM's gray range (``measure`` accounts for the frames as shown)."""
        side = self.spec.input_side
        low, high = self.input.limits.gray  # full transmission is the highest gray level the input SLM may show
        return torch.round(x.clamp(0.0, 1.0) * high).clamp(low, high).to(torch.uint8).view(-1, side, side)

    def measure_volts(self, frames: torch.Tensor) -> torch.Tensor:
        """Detector volts ``(B, 10)`` for input frames ``(B, side, side)`` at the present masks."""
        readings = measure_batch(self.input, self.detectors, self.streamer, frames, self.clock, self.stats)
        return readings.to(self.torch_device)

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """Region powers as fractions of the input power ``(B, 10)`` for intensities ``x`` ∈ [0, 1] ``(B, side²)``."""
        frames = self.input_frames(x)
        volts = self.measure_volts(frames)
        shown = frames.reshape(frames.shape[0], -1).to(self.torch_device, torch.float32) / 255
        relative = self._design.input_field(shown)[1] / self.optics.image_px**2
        units = (volts - self.spec.readout_dark_volts) / self.spec.readout_volts_per_unit
        return torch.where(relative.unsqueeze(1) > 0, units / relative.clamp_min(1e-12).unsqueeze(1), 0.0)

    # -- the layer operation -------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """``(B, side²)`` non-negative intensities → ``(B, 10)`` region powers / input power; ``controls`` in rad."""
        features = self.spec.input_side**2
        if x.ndim != 2 or x.shape[1] != features:
            raise ValueError(f"inputs must be (B, {features}), got {tuple(x.shape)}")
        x = x.detach().to(self.torch_device, torch.float32)
        if bool((x < 0).any()):
            raise ValueError("inputs to a diffractive layer are input-SLM intensities and must be non-negative")
        scale = x.amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        self.program(self.to_gray(controls.detach().to(self.torch_device, torch.float32)))
        y = self.measure(x / scale)
        self.stats.forwards += 1
        return y
