"""The ``system:`` section of a saturable-absorber network layer (the ``saturable`` kind)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labsat.benchfile import RoleNeed, SystemSpec


class SaturableSystemSpec(SystemSpec):
    """A saturable-absorber layer: a weight SLM of ``outputs × inputs`` pixels, an input SLM, a camera.

    Amplitudes are in units of √I_sat of the nominal absorber; ``alpha0`` and ``i_sat`` are the nominal
    absorber the uncalibrated twin assumes (a calibration measures them).
    """

    type: Literal["saturable"]
    inputs: int = Field(gt=0, description="Input fields (input SLM pixels, weight SLM columns).")
    outputs: int = Field(gt=0, description="Output fields (weight SLM rows, camera channels).")
    weights: str = Field(description="SLM showing the weights, one pixel per (output, input).")
    input: str = Field(description="SLM showing one sample's input amplitudes, 1 x inputs pixels.")
    camera: str = Field(description="Detector reading the absorber's output fields, one channel per output.")
    input_full_scale: float = Field(3.0, gt=0, description="Input amplitude at gray level 255.")
    alpha0: float = Field(10.0, ge=0, description="Nominal small-signal optical depth of the absorber.")
    i_sat: float = Field(1.0, gt=0, description="Nominal saturation intensity, in amplitude² units.")

    @property
    def label(self) -> str:
        return f"{self.outputs}x{self.inputs} saturable-absorber layer"

    def device_roles(self) -> list[RoleNeed]:
        return [
            RoleNeed("weights", self.weights, "slm", shape=(self.outputs, self.inputs)),
            RoleNeed("input", self.input, "slm", shape=(1, self.inputs)),
            RoleNeed("camera", self.camera, "detector", self.outputs),
        ]
