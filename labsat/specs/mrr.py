"""The ``system:`` section of a microring weight bank (the ``mrr_bank`` kind)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labsat.benchfile import RoleNeed, SystemSpec


class MRRSystemSpec(SystemSpec):
    """A microring weight bank: rows = output neurons (balanced detectors), cols = WDM input channels."""

    type: Literal["mrr_bank"]
    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    heaters: str = Field(description="Voltage source driving the ring heaters, ring (r, c) on channel r*cols+c.")
    modulators: str = Field(description="Voltage source driving the input modulators, one per WDM channel.")
    detectors: str = Field(description="Detector with one balanced photodetector per row.")
    settle_time_s: float = Field(5e-3, ge=0, description="Wait after programming the heaters.")
    modulator_v_pi: float = Field(2.0, gt=0, description="Nominal modulator half-wave voltage.")
    readout_volts_per_unit: float = Field(
        0.5, gt=0, description="Nominal detector volts for a weighted input sum of 1."
    )
    readout_dark_volts: float = Field(0.0, description="Nominal detector reading with no light.")

    @property
    def label(self) -> str:
        return f"{self.rows}x{self.cols} bank"

    def device_roles(self) -> list[RoleNeed]:
        """Each role's device, kind and channel count."""
        return [
            RoleNeed("heaters", self.heaters, "voltage_source", self.rows * self.cols),
            RoleNeed("modulators", self.modulators, "voltage_source", self.cols),
            RoleNeed("detectors", self.detectors, "detector", self.rows),
        ]
