"""The ``system:`` section of a rectangular MZI mesh (the ``mzi_mesh`` kind)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labsat.benchfile import RoleNeed, SystemSpec


class MZISystemSpec(SystemSpec):
    """A rectangular (Clements) MZI mesh on ``modes`` modes: two heaters per MZI, one modulator and PD per mode."""

    type: Literal["mzi_mesh"]
    modes: int = Field(ge=2)
    heaters: str = Field(
        description="Voltage source with N(N−1) heaters: MZI k's internal phase θ on channel 2k, external φ on 2k+1."
    )
    modulators: str = Field(description="Voltage source driving the input amplitude modulators, one per mode.")
    detectors: str = Field(description="Detector with one photodiode per output mode.")
    settle_time_s: float = Field(5e-3, ge=0, description="Wait after programming the heaters.")
    modulator_v_pi: float = Field(2.0, gt=0, description="Nominal modulator half-wave voltage.")
    readout_volts_per_unit: float = Field(
        0.25, gt=0, description="Nominal detector volts for an output intensity of one input's full power."
    )
    readout_dark_volts: float = Field(0.0, description="Nominal detector reading with no light.")
    p_pi_mw: float = Field(25.0, gt=0, description="Nominal heater power for a π phase shift (the design twin's).")
    heater_resistance_ohm: float = Field(1000.0, gt=0, description="Nominal heater resistance.")

    @property
    def label(self) -> str:
        return f"{self.modes}-mode mesh"

    def device_roles(self) -> list[RoleNeed]:
        return [
            RoleNeed("heaters", self.heaters, "voltage_source", self.modes * (self.modes - 1)),
            RoleNeed("modulators", self.modulators, "voltage_source", self.modes),
            RoleNeed("detectors", self.detectors, "detector", self.modes),
        ]
