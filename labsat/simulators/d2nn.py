"""Simulated diffractive network: one optical table (ground truth, hidden from callers) behind SLMs and a camera.

:class:`D2NNChipSimulator` holds what a real D2NN bench has: the gray frames on each phase-mask SLM and on
the input SLM, the laser, and a camera whose ten detector regions are read as one vector. Its truth is
drawn once per bench seed: each mask SLM's gray→phase LUT (a gamma-like curve whose phase range differs
from the vendor's nominal 2π and between SLMs) and the detector gains. The masks' misalignment (rotation,
shift, scale) is set from the ``simulator:`` section and can be moved at run time for sweeps. Every new
mask frame shows a fresh phase flicker (the liquid crystal never settles exactly); the camera adds RIN,
thermal and shot noise and quantises like every other simulated detector
(:class:`~labsat.simulators.detection.DetectionConfig`).

The optics are :class:`~labsat.physics.diffractive.DiffractiveModel`, the same model the twin uses: the
simulator differs from the nominal twin by the LUTs, the misalignment, the noise and the detection.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from labsat.benchfile import DeviceSpec
from labsat.clock import Clock
from labsat.errors import BenchFileError, InstrumentError
from labsat.physics.compute import default_device
from labsat.physics.diffractive import CLASSES, DiffractiveModel, DiffractiveOptics, Misalignment
from labsat.physics.slm import PhaseLUT
from labsat.registry import BenchContext
from labsat.simulators.detection import DetectionConfig
from labsat.simulators.draws import relative_spread, stream_seeds
from labsat.simulators.light import SimLightSource, light_scale
from labsat.specs.d2nn import D2NNSystemSpec

SLM_OPTIONS = frozenset({"role", "shape", "settle_time_s"})
"""Options a simulated SLM takes: ``shape`` and ``settle_time_s`` mean what they mean to the ``slm_screen`` driver."""

DEFAULT_SETTLE_TIME_S = 0.3
"""Liquid-crystal settle time when a bench file gives none (the ``slm_screen`` driver's default)."""


class D2NNSimConfig(DetectionConfig):
    """Physics of a simulated D2NN bench (the ``simulator:`` section of a d2nn bench file). Units: rad, mW, px, deg."""

    lut_phase_max_rad: float = Field(1.9 * math.pi, gt=0, description="True phase at gray 255 (nominal: 2π·255/256).")
    lut_gamma: float = Field(1.2, gt=0, description="Curvature of the true LUT φ(g) = φ_max·(g/255)^γ.")
    lut_spread: float = Field(0.03, ge=0, description="Relative std of φ_max between SLMs (each its own LUT).")
    phase_flicker_rad: float = Field(0.02, ge=0, description="Std of a pixel's phase error, redrawn at each new frame.")
    rotation_deg: float = Field(0.0, description="True rotation of the masks about the optical axis.")
    shift_px: tuple[float, float] = Field((0.0, 0.0), description="True (x, y) shift of the masks.")
    scale: float = Field(1.0, gt=0, description="True magnification of the masks.")
    input_power_mw: float = Field(1.0, ge=0, description="Laser power through the input SLM at full gray everywhere.")


class D2NNChipSimulator:
    """One simulated D2NN table: ``L`` phase-mask SLMs, an input SLM, a camera with ten detector regions.

    The input SLM transmits intensity ``gray/255`` per pixel; detector ``k`` reads
    ``g_k·P_in·P_rel(x)·y_k(x, φ) + dark`` volts, where ``y`` is the model's fraction of the input power in
    region ``k``, ``P_rel`` the input image's power relative to a full-on frame, and ``φ`` the phases the
    mask SLMs really show (true LUT plus flicker).
    """

    detector_kind = "camera (detector regions)"

    def __init__(
        self,
        config: D2NNSimConfig,
        optics: DiffractiveOptics,
        input_side: int,
        seed: int,
        clock: Clock,
        device: torch.device | str | None = None,
    ) -> None:
        self.config = config
        self.optics = optics
        self.input_side = input_side
        self.seed = seed
        self.clock = clock
        self.device = torch.device(device) if device is not None else default_device()
        generator = torch.Generator().manual_seed(stream_seeds(seed)[0])
        ranges = config.lut_phase_max_rad * relative_spread(generator, (optics.masks,), config.lut_spread)
        self.luts = [PhaseLUT.power_law(float(r), config.lut_gamma) for r in ranges]
        gain = config.responsivity_a_per_w * 1e-3 * config.tia_gain_ohm
        gains = gain * relative_spread(generator, (CLASSES,), config.detector_gain_spread)
        self.readout_volts_per_mw = gains.to(self.device)
        self.model = DiffractiveModel(
            optics, Misalignment(config.rotation_deg, config.shift_px, config.scale), self.device
        )
        self._noise = torch.Generator(device=self.device).manual_seed(stream_seeds(seed)[1])
        self.light: SimLightSource | None = None
        """The bench's simulated laser, when it has one: the input light follows its power and output state."""
        self._phase = torch.stack([lut.to_phase(torch.zeros(optics.grid, optics.grid)) for lut in self.luts])
        self._phase = self._phase.to(self.device, torch.float32)
        self._input = torch.zeros(input_side, input_side, dtype=torch.uint8, device=self.device)
        self.input_frame_time_s = 0.0
        """Least time between streamed input frames: the simulated input SLM sets its settle time here."""

    @property
    def label(self) -> str:
        return f"{self.optics.grid}x{self.optics.grid} D2NN with {self.optics.masks} masks, seed {self.seed}"

    def channel_count(self, role: str) -> int:
        if role != "detectors":
            raise ValueError(f"a D2NN's only channel device is its detectors, not {role!r}")
        return CLASSES

    @property
    def misalignment(self) -> Misalignment:
        return self.model.misalignment

    def set_misalignment(self, misalignment: Misalignment) -> None:
        """Move the masks (evaluation sweeps); takes effect at the next reading."""
        self.model = self.model.with_misalignment(misalignment)

    @property
    def mask_phases(self) -> Tensor:
        """Phases ``(L, N, N)`` the mask SLMs show now, flicker included (ground truth; for tests)."""
        return self._phase.clone()

    # -- what the simulated SLMs do -------------------------------------------------------------------

    def show_mask(self, index: int, gray: Tensor) -> None:
        """Mask SLM ``index`` shows ``gray`` ``(N, N)``: its true LUT, plus a fresh flicker draw."""
        phase = self.luts[index].to_phase(gray.to(self.device))
        if self.config.noise and self.config.phase_flicker_rad > 0:
            phase = phase + self.config.phase_flicker_rad * self._randn(phase.shape)
        self._phase[index] = phase.to(torch.float32)

    def show_input(self, gray: Tensor) -> None:
        self._input = gray.to(self.device, torch.uint8)

    # -- measurement ----------------------------------------------------------------------------------

    def stream(self, frames: Tensor) -> Tensor:
        """Detector volts ``(B, 10)`` for ``B`` input frames ``(B, side, side)`` shown back to back, each read once."""
        frames = torch.as_tensor(frames, device=self.device)
        expected = (self.input_side, self.input_side)
        if frames.dim() != 3 or tuple(frames.shape[1:]) != expected:
            raise ValueError(f"input frames must be (B, {expected[0]}, {expected[1]}), got {tuple(frames.shape)}")
        readings = self._measure(frames)
        self.clock.sleep(frames.shape[0] * (self.input_frame_time_s + self.config.sample_time_s))
        return readings

    def read_detectors(self) -> Tensor:
        """One reading ``(10,)`` of the present input frame: a bus command, then one exposure."""
        self.clock.sleep(self.config.bus_latency_s)
        reading = self._measure(self._input.unsqueeze(0))[0]
        self.clock.sleep(self.config.sample_time_s)
        return reading

    def _measure(self, frames: Tensor) -> Tensor:
        cfg = self.config
        x = frames.reshape(frames.shape[0], -1).to(torch.float32) / 255
        fraction = self.model.layer(x, self._phase).to(torch.float64)
        relative = self.model.input_field(x)[1].to(torch.float64) / self.optics.image_px**2
        power = cfg.input_power_mw * light_scale(self.light) * relative.unsqueeze(1) * fraction
        return cfg.detect(power, self.readout_volts_per_mw, self._randn)

    def _randn(self, shape: tuple[int, ...] | torch.Size) -> Tensor:
        return torch.randn(shape, generator=self._noise, device=self.device, dtype=torch.float64)


class SimSLM:
    """A mask SLM (``mask`` = its index) or the input SLM (``mask`` None) of a simulated D2NN table."""

    def __init__(
        self, chip: D2NNChipSimulator, name: str, mask: int | None, shape: tuple[int, int], settle_time_s: float
    ) -> None:
        self.chip = chip
        self.name = name
        self.mask = mask
        self.shape = shape
        self.settle_time = settle_time_s

    def identity(self) -> str:
        what = "input amplitude SLM" if self.mask is None else f"phase SLM for mask {self.mask}"
        return f"labsat simulated {what}, {self.shape[0]}x{self.shape[1]} ({self.chip.label})"

    def show_frame(self, gray: np.ndarray) -> None:
        frame = np.asarray(gray)
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise InstrumentError(f"{self.name}: expected a {self.shape} uint8 frame, got {frame.shape} {frame.dtype}")
        tensor = torch.from_numpy(frame.copy())
        if self.mask is None:
            self.chip.show_input(tensor)
        else:
            self.chip.show_mask(self.mask, tensor)


def build_sim_slm(chip: D2NNChipSimulator, name: str, spec: DeviceSpec, context: BenchContext) -> SimSLM:
    """A simulated SLM with ``options.role`` ``mask`` (listed in ``system.masks``) or ``input``."""
    system = context.bench.system
    assert isinstance(system, D2NNSystemSpec)
    options: dict[str, Any] = spec.options
    if options["role"] == "mask":
        if name not in system.masks:
            raise BenchFileError(context.path, f"devices.{name}.options.role", "a sim mask SLM must be in system.masks")
        mask: int | None = system.masks.index(name)
        shape = (system.grid, system.grid)
    else:
        mask, shape = None, (system.input_side, system.input_side)
    declared = options.get("shape")
    if declared is not None and tuple(declared) != shape:
        raise BenchFileError(context.path, f"devices.{name}.options.shape", f"this simulated SLM is {list(shape)}")
    settle = options.get("settle_time_s", DEFAULT_SETTLE_TIME_S)
    if not isinstance(settle, int | float) or settle < 0:
        raise BenchFileError(context.path, f"devices.{name}.options.settle_time_s", "must be a number of seconds >= 0")
    if mask is None:
        chip.input_frame_time_s = float(settle)
    return SimSLM(chip, name, mask, shape, float(settle))
