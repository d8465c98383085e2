"""How a simulated chip's light is detected and its instruments talk: noise, ADC, the heater DAC.

Every simulator shares it: the integrated chips (MRR bank, MZI mesh) through :class:`InstrumentConfig`,
the diffractive network through :class:`DetectionConfig`, so that one detection model (thermal, shot and
RIN noise, ADC) serves them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

ELEMENTARY_CHARGE_C = 1.602176634e-19


class StrictConfig(BaseModel):
    """Unknown keys are errors: a misspelt noise level must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionConfig(StrictConfig):
    """How every simulated chip's light is detected (photodiodes or camera regions) and its instruments talk.

    Units: V, mW, Ω, s. Shared by every simulator so that one detection model (thermal, shot and RIN
    noise, ADC) and one :class:`SimDetector` serve them all.
    """

    responsivity_a_per_w: float = Field(1.0, gt=0, description="Photodiode responsivity.")
    tia_gain_ohm: float = Field(500.0, gt=0, description="Transimpedance gain.")
    detector_gain_spread: float = Field(0.02, ge=0, description="Relative std of a detector's gain.")
    dark_volts: float = Field(0.002, description="Detector output with no light.")
    thermal_noise_a: float = Field(1e-6, ge=0, description="RMS input-referred current noise over the bandwidth.")
    rin_db_per_hz: float = Field(-140.0, description="Laser relative intensity noise.")
    bandwidth_hz: float = Field(1e6, gt=0, description="Detection noise bandwidth.")
    adc_bits: int = Field(16, ge=1, le=32, description="ADC resolution over ±full scale.")
    adc_full_scale_v: float = Field(5.0, gt=0, description="ADC clips at ± this voltage.")
    sample_time_s: float = Field(1e-6, gt=0, description="One detector sample (the integration time).")
    bus_latency_s: float = Field(1e-3, ge=0, description="Time one instrument command takes on the bus.")
    noise: bool = Field(True, description="Master switch for all random noise (quantisation stays).")

    @property
    def rin_sigma(self) -> float:
        """Relative std of each channel's optical power within the bandwidth: √(10^(RIN/10)·B)."""
        return math.sqrt(10 ** (self.rin_db_per_hz / 10) * self.bandwidth_hz)

    @property
    def adc_step_v(self) -> float:
        return 2 * self.adc_full_scale_v / 2**self.adc_bits

    def adc(self, volts: Tensor) -> Tensor:
        """Bipolar ADC: codes ``−2^(n−1) … 2^(n−1) − 1`` of ``2·FS/2^n``; beyond full scale it clips."""
        step = self.adc_step_v
        half = 2 ** (self.adc_bits - 1)
        return torch.round(volts / step).clamp(-half, half - 1) * step

    def shot_variance(self, current_a: Tensor) -> Tensor:
        """``2qIB`` (A²) for a photocurrent ``current_a``."""
        return 2 * ELEMENTARY_CHARGE_C * current_a * self.bandwidth_hz

    def detect(self, power_mw: Tensor, volts_per_mw: Tensor, randn: Callable[[tuple[int, ...]], Tensor]) -> Tensor:
        """Detector volts for optical powers ``(B, channels)`` from one laser: RIN, thermal and shot noise, the ADC.

        The laser's intensity noise is common to a sample's every channel (one source lights them all), so it
        scales each row; ``randn(shape)`` draws the noise (the simulator's seeded stream), RIN first.
        """
        if self.noise and self.rin_sigma > 0:
            power_mw = power_mw * (1 + self.rin_sigma * randn((power_mw.shape[0], 1))).clamp_min(0)
        volts = power_mw * volts_per_mw + self.dark_volts
        if self.noise:
            to_amps = self.responsivity_a_per_w * 1e-3
            sigma_a = (self.thermal_noise_a**2 + self.shot_variance(to_amps * power_mw)).sqrt()
            volts = volts + sigma_a * (volts_per_mw / to_amps) * randn(tuple(volts.shape))
        return self.adc(volts)


class InstrumentConfig(DetectionConfig):
    """What the integrated chips' instruments add to detection: a heater DAC and input modulators. Units: V, mW.

    The chip-specific physics (rings, meshes) extends it, so that one set of instrument classes
    (:class:`SimVoltageSource`, :class:`SimDetector`) serves every integrated simulator.
    """

    heater_dac_bits: int = Field(16, ge=1, le=32, description="Heater DAC resolution.")
    heater_dac_range_v: tuple[float, float] = Field((0.0, 4.0), description="Heater DAC output range [min, max].")
    modulator_v_pi: float = Field(2.0, gt=0, description="Modulator half-wave voltage (full power at V_π).")
    modulator_v_pi_spread: float = Field(0.02, ge=0, description="Relative std of V_π between channels.")
    input_power_mw: float = Field(1.0, ge=0, description="Optical power per channel at full modulation.")

    @model_validator(mode="after")
    def _dac_range(self) -> InstrumentConfig:
        low, high = self.heater_dac_range_v
        if not low < high:
            raise ValueError(f"heater_dac_range_v must be [min, max] with min < max, got [{low:g}, {high:g}]")
        return self

    @property
    def heater_dac_step_v(self) -> float:
        low, high = self.heater_dac_range_v
        return (high - low) / (2**self.heater_dac_bits - 1)

    def quantise_heater_volts(self, volts: Tensor) -> Tensor:
        """What the heater DAC really outputs for ``volts``: nearest code within its range."""
        low, high = self.heater_dac_range_v
        step = self.heater_dac_step_v
        return low + torch.round((volts.clamp(low, high) - low) / step) * step
