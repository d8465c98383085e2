"""A simulated saturable-absorber bench: the absorber layer behind a weight SLM, an input SLM and a camera.

:class:`~labsat.simulators.saturable.SaturableLayerSimulator` is the layer's physics, driven directly with
weights. A bench drives it through instruments, as the real one is driven: the weight SLM shows the
``(outputs, inputs)`` weights as gray levels (``w = (g − 127)/127``), the input SLM shows one sample's field
amplitudes (``x = full_scale · g/255``) and the camera reads the absorber's output fields ``SA(W x)``,
one reading per output, with the layer's detector noise. The ``sim`` driver builds these devices (one
shared :class:`SaturableBenchSimulator` per bench) when a bench's ``system.type`` is ``saturable``; the SLMs
reach it through the guard like any SLM.

The simulated chip exposes its ground truth (:mod:`labsat.truth`): its ``seed`` and, as ``truth``, the
physics (:class:`~labsat.simulators.saturable.SaturableSimConfig`) a calibration should recover.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from labsat.benchfile import DeviceKind, DeviceSpec
from labsat.clock import Clock
from labsat.errors import BenchFileError, InstrumentError
from labsat.physics.saturable import WEIGHT_ZERO, transmit, weights_of_gray
from labsat.registry import BenchContext
from labsat.simulators.plugin import ChipKind, sim_config
from labsat.simulators.saturable import SaturableLayerSimulator, SaturableSimConfig

ROLES: dict[str, DeviceKind] = {"weights": "slm", "input": "slm", "camera": "detector"}
"""Each role of a saturable-absorber bench and the device kind it must be declared as."""


class SaturableGeometry(Protocol):
    """What the simulated bench needs of its system spec: the layer's size and the input SLM's full scale."""

    inputs: int
    outputs: int
    input_full_scale: float
    weights: str
    input: str


class SaturableBenchSimulator:
    """The layer's physics behind a weight frame, an input frame and a camera; shared by the sim devices."""

    detector_kind = "camera"

    def __init__(
        self,
        config: SaturableSimConfig,
        geometry: SaturableGeometry,
        seed: int,
        clock: Clock,
    ) -> None:
        self.config = config
        self.truth = config
        self.seed = seed
        self.clock = clock
        self.inputs, self.outputs = geometry.inputs, geometry.outputs
        self.full_scale = geometry.input_full_scale
        self.layer = SaturableLayerSimulator(config.model_copy(update={"slm_bits": None}), seed)
        self._weights = torch.full((self.outputs, self.inputs), WEIGHT_ZERO, dtype=torch.uint8)
        self._input = torch.zeros(1, self.inputs, dtype=torch.uint8)
        self.label = f"{self.outputs}x{self.inputs} saturable-absorber layer, seed {seed}"

    def channel_count(self, role: str) -> int:
        return self.outputs

    def show(self, role: str, frame: Tensor) -> None:
        """A frame reached an SLM (the weights' or the input's)."""
        if role == "weights":
            self._weights = frame.clone()
        else:
            self._input = frame.clone()

    def stream(self, frames: Tensor) -> Tensor:
        """Camera readings ``(B, outputs)`` for ``B`` input frames ``(B, 1, inputs)`` shown back to back."""
        frames = torch.as_tensor(frames).cpu()  # the layer's physics runs where its noise stream is: the CPU
        if frames.dim() != 3 or tuple(frames.shape[1:]) != (1, self.inputs):
            raise ValueError(f"input frames must be (B, 1, {self.inputs}), got {tuple(frames.shape)}")
        readings = self._read(frames.reshape(frames.shape[0], self.inputs))
        self.clock.sleep(frames.shape[0] * self.config.exposure_s)
        return readings

    def read_camera(self) -> Tensor:
        """One camera frame ``(outputs,)`` of the present input frame."""
        reading = self._read(self._input)[0]
        self.clock.sleep(self.config.exposure_s)
        return reading

    def _read(self, gray: Tensor) -> Tensor:
        x = gray.to(torch.float32) * (self.full_scale / 255.0)
        fields = transmit(x @ weights_of_gray(self._weights).T, self.config.alpha0, self.config.i_sat)
        return self.layer.read_out(fields)


class SaturableSLM:
    """The weight SLM or the input SLM of a simulated saturable-absorber bench."""

    def __init__(
        self, chip: SaturableBenchSimulator, name: str, role: str, shape: tuple[int, int], settle_time_s: float
    ) -> None:
        self.chip, self.name, self.role, self.shape = chip, name, role, shape
        self.settle_time = settle_time_s

    def identity(self) -> str:
        return f"labsat simulated {self.role} SLM, {self.shape[0]}x{self.shape[1]} ({self.chip.label})"

    def show_frame(self, gray: np.ndarray) -> None:
        frame = np.asarray(gray)
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise InstrumentError(f"{self.name}: expected a {self.shape} uint8 frame, got {frame.shape} {frame.dtype}")
        self.chip.show(self.role, torch.from_numpy(frame.copy()))


class SaturableCamera:
    """The camera reading the absorber's output fields, one channel per output."""

    def __init__(self, chip: SaturableBenchSimulator, name: str) -> None:
        self.chip, self.name = chip, name

    @property
    def n_channels(self) -> int:
        return self.chip.outputs

    @property
    def integration_time(self) -> float:
        return self.chip.config.exposure_s

    def identity(self) -> str:
        return f"labsat simulated camera, {self.n_channels} output fields ({self.chip.label})"

    def read(self) -> np.ndarray:
        return self.chip.read_camera().cpu().numpy().astype(np.float64)


def build_saturable_device(chip: SaturableBenchSimulator, name: str, spec: DeviceSpec, context: BenchContext) -> Any:
    """A simulated device of the bench (``options.role``: ``weights``, ``input`` or ``camera``)."""
    role = spec.options["role"]
    if role == "camera":
        return SaturableCamera(chip, name)
    shape = (chip.outputs, chip.inputs) if role == "weights" else (1, chip.inputs)
    declared = spec.options.get("shape")
    if declared is not None and tuple(declared) != shape:
        raise BenchFileError(context.path, f"devices.{name}.options.shape", f"this simulated SLM is {list(shape)}")
    # The weight SLM settles as the simulator says unless the bench file says otherwise; the input SLM is the
    # fast one (a DMD-like amplitude modulator) whose frames the camera exposures pace.
    default = chip.config.slm_settle_s if role == "weights" else 0.0
    settle = spec.options.get("settle_time_s", default)
    if not isinstance(settle, int | float) or settle < 0:
        raise BenchFileError(context.path, f"devices.{name}.options.settle_time_s", "must be a number of seconds >= 0")
    return SaturableSLM(chip, name, role, shape, float(settle))


def saturable_chip(context: BenchContext) -> SaturableBenchSimulator:
    """The simulated layer of a saturable-absorber bench, from its ``simulator:`` section and ``system`` size."""
    geometry: Any = context.bench.system  # the saturable kind's spec, which has the SaturableGeometry fields
    config = sim_config(context, SaturableSimConfig)
    # The layer is small and its noise stream a CPU generator: it runs on the CPU whatever the bench's torch device.
    return SaturableBenchSimulator(config, geometry, context.bench.seed, context.clock)


SATURABLE_CHIP = ChipKind(saturable_chip, ROLES, ("input", "camera"), device=build_saturable_device)
"""How the ``sim`` driver simulates a saturable-absorber bench."""
