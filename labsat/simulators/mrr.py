"""Simulated MRR weight bank: one chip (ground truth, hidden from callers) behind simulated instruments.

:class:`MRRChipSimulator` owns the physical state a real bench has: what the heater DAC outputs, what
the rings' heaters have actually reached (first-order settling on the bench clock), what the input
modulators drive, and the ambient temperature. The instruments (:class:`SimVoltageSource`,
:class:`SimDetector`) are thin views on it, so a heater write moves a detector reading exactly as on
the bench. The chip also streams whole batches (:meth:`MRRChipSimulator.stream`), the fast path a
waveform generator plus triggered DAQ gives a real bench; both paths share one measurement model.

Time only ever advances through the bench clock (never ``time.sleep``): a simulated run finishes
quickly yet reports how long it would have taken.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from labsat.clock import Clock
from labsat.errors import InstrumentError
from labsat.physics.compute import default_device
from labsat.physics.mrr import (
    MRRChipParams,
    balanced_readout,
    heater_power_mw,
    modulator_power_mw,
    thermal_kernel,
    weights_from_power,
)
from labsat.simulators.light import SimLightSource, light_scale

ELEMENTARY_CHARGE_C = 1.602176634e-19
_SETTLED_MW = 1e-9
"""Heater power still to settle below which the chip counts as settled (≈1e-10 nm of resonance)."""
_TRANSIENT_CHUNK = 1 << 20
STATE_SAVE_INTERVAL_S = 0.2
"""Longest a simulated source's state file lags its outputs while the process lives."""
"""Largest number of ring-samples evaluated at once while heaters settle during a stream."""


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt noise level must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CrosstalkConfig(_Strict):
    """Thermal crosstalk: fraction of a heater's power reaching first neighbours; second ones get ``× decay``."""

    horizontal: float = Field(0.08, ge=0, description="Neighbour in the same row (adjacent WDM channel).")
    vertical: float = Field(0.04, ge=0, description="Neighbour in the same column (adjacent output row).")
    diagonal: float = Field(0.02, ge=0, description="Diagonal neighbour.")
    decay: float = Field(0.3, ge=0, le=1, description="Second neighbours receive first-neighbour fraction × decay.")


class DetectionConfig(_Strict):
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


class MRRSimConfig(InstrumentConfig):
    """Physics of a simulated MRR bank (the ``simulator:`` section of a bench file). Units: nm, mW, V, Ω, s, K."""

    channel_spacing_nm: float = Field(0.8, gt=0, description="WDM channel spacing.")
    center_wavelength_nm: float = Field(1550.0, gt=0, description="Centre of the WDM comb.")
    rest_detuning_nm: float = Field(
        1.0, ge=0, description="Rings rest this far blue of their channel; the heaters red-shift them onto it."
    )
    fab_sigma_nm: float = Field(0.08, ge=0, description="Std of the per-ring fabrication offset.")
    fwhm_nm: float = Field(0.3, gt=0, description="Resonance full width at half maximum.")
    fwhm_spread: float = Field(0.03, ge=0, description="Relative std of FWHM between rings.")
    drop_depth: float = Field(1.0, gt=0, le=1, description="Drop transmission on resonance.")
    efficiency_nm_per_mw: float = Field(0.2, gt=0, description="Resonance shift per mW of heater power.")
    efficiency_spread: float = Field(0.05, ge=0, description="Relative std of the tuning efficiency.")
    heater_resistance_ohm: float = Field(1000.0, gt=0, description="Heater resistance.")
    resistance_spread: float = Field(0.03, ge=0, description="Relative std of the heater resistance.")
    crosstalk: CrosstalkConfig = CrosstalkConfig()
    spectral_crosstalk: bool = Field(False, description="Neighbouring rings' Lorentzian tails also filter a channel.")
    drift_nm_per_k: float = Field(0.08, description="Resonance shift per kelvin of chip temperature.")
    ambient_delta_k: float = Field(0.0, description="Chip temperature offset at start.")
    heater_tau_s: float = Field(1e-3, ge=0, description="First-order thermal time constant of a heater.")


# -- chips ---------------------------------------------------------------------------------------------


def _stream_seeds(seed: int) -> tuple[int, int]:
    """Independent seeds for the chip draw and the noise of bench seed ``seed`` (any int, negative too)."""
    chip, noise = np.random.SeedSequence(seed % 2**64).spawn(2)
    return int(chip.generate_state(1, np.uint64)[0] >> 1), int(noise.generate_state(1, np.uint64)[0] >> 1)


def relative_spread(generator: torch.Generator, shape: tuple[int, ...], relative: float) -> Tensor:
    """``1 + relative·N(0, 1)`` (float64, CPU), clipped at 0.1 so an extreme draw cannot flip a sign."""
    return (1 + relative * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp_min(0.1)


def chip_params(
    config: MRRSimConfig,
    rows: int,
    cols: int,
    seed: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> MRRChipParams:
    """The ground truth of the chip fabricated with ``seed``: same seed, same chip, on any device.

    Draws happen on the CPU in a fixed order, then move to ``device``. Relative spreads are clipped at
    10 % of nominal so that an extreme draw cannot give a negative width, resistance or gain.
    """
    generator = torch.Generator().manual_seed(_stream_seeds(seed)[0])

    def spread(shape: tuple[int, ...], relative: float) -> Tensor:
        return relative_spread(generator, shape, relative)

    offsets = torch.arange(cols, dtype=torch.float64) - (cols - 1) / 2
    channels = config.center_wavelength_nm + config.channel_spacing_nm * offsets
    fab = config.fab_sigma_nm * torch.randn((rows, cols), generator=generator, dtype=torch.float64)
    params = MRRChipParams(
        channel_wavelength_nm=channels,
        rest_resonance_nm=channels - config.rest_detuning_nm + fab,
        fwhm_nm=config.fwhm_nm * spread((rows, cols), config.fwhm_spread),
        drop_depth=torch.full((rows, cols), config.drop_depth, dtype=torch.float64),
        efficiency_nm_per_mw=config.efficiency_nm_per_mw * spread((rows, cols), config.efficiency_spread),
        heater_resistance_ohm=config.heater_resistance_ohm * spread((rows, cols), config.resistance_spread),
        crosstalk_kernel=thermal_kernel(**config.crosstalk.model_dump(), dtype=torch.float64),
        drift_nm_per_k=config.drift_nm_per_k,
        modulator_v_pi=config.modulator_v_pi * spread((cols,), config.modulator_v_pi_spread),
        input_power_mw=torch.full((cols,), config.input_power_mw, dtype=torch.float64),
        readout_volts_per_mw=(config.responsivity_a_per_w * 1e-3 * config.tia_gain_ohm)
        * spread((rows,), config.detector_gain_spread),
        readout_offset_v=torch.full((rows,), config.dark_volts, dtype=torch.float64),
        spectral_crosstalk=config.spectral_crosstalk,
    )
    return params.to(device=device, dtype=dtype)


def draw_chips(
    config: MRRSimConfig,
    rows: int,
    cols: int,
    seeds: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> MRRChipParams:
    """A population of chips, one per seed, as batched parameters ``(K, ...)`` for Monte-Carlo transfer studies.

    Chip ``k`` equals ``chip_params(config, rows, cols, seeds[k])``, the chip a bench with that seed simulates.
    """
    return MRRChipParams.stack([chip_params(config, rows, cols, seed, device, dtype) for seed in seeds])


# -- the simulated chip ---------------------------------------------------------------------------------


class IntegratedChipSimulator:
    """What every simulated integrated chip shares: its config, seed, clock and torch device, the noise stream
    of its seed, and the drives of its ``inputs`` modulators (set by the modulator instrument, read in batches).
    """

    def __init__(
        self,
        config: InstrumentConfig,
        inputs: int,
        seed: int,
        clock: Clock,
        device: torch.device | str | None,
        dtype: torch.dtype,
    ) -> None:
        self.config = config
        self.seed = seed
        self.clock = clock
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype
        self._noise = torch.Generator(device=self.device).manual_seed(_stream_seeds(seed)[1])
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


class MRRChipSimulator(IntegratedChipSimulator):
    """One simulated MRR bank with its heater DAC, input modulators and balanced detectors.

    Ring ``(r, c)`` is heater channel ``r·cols + c``. The heater DAC quantises and clips what it is told
    to output; each ring's effective heater power then approaches ``V²/R`` as
    ``P(t) = P_target + (P_start − P_target)·exp(−(t − t_write)/τ)``, so a reading taken before the
    heaters settle sees the transient. The ambient temperature acts at once (the chip's slow drift).
    """

    def __init__(
        self,
        config: MRRSimConfig,
        rows: int,
        cols: int,
        seed: int,
        clock: Clock,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__(config, cols, seed, clock, device, dtype)
        self.config: MRRSimConfig = config
        self.rows = rows
        self.cols = cols
        self.truth = chip_params(config, rows, cols, seed, self.device, dtype)
        zeros = torch.zeros(rows, cols, device=self.device, dtype=dtype)
        self._heater_volts = zeros.clone()
        self._power_target = zeros.clone()
        self._power_start = zeros.clone()
        self._settle_from = clock.now()
        self.ambient_delta_k = config.ambient_delta_k

    detector_kind = "balanced detector array"

    @property
    def label(self) -> str:
        """What this chip is, for instrument identities and error messages."""
        return f"{self.rows}x{self.cols} MRR bank, seed {self.seed}"

    def channel_count(self, role: str) -> int:
        """Channels of the instrument with ``role`` (``heaters``, ``modulators``, ``detectors``)."""
        return {"heaters": self.rows * self.cols, "modulators": self.cols, "detectors": self.rows}[role]

    # -- state ------------------------------------------------------------------------------------------

    @property
    def heater_volts(self) -> Tensor:
        """Present heater DAC outputs ``(R, C)`` (after quantisation)."""
        return self._heater_volts.clone()

    def quantise_heater_volts(self, volts: Tensor) -> Tensor:
        """What the heater DAC really outputs for ``volts``: nearest code within its range."""
        return self.config.quantise_heater_volts(volts)

    def set_heaters(self, positions: Tensor, volts: Tensor, *, settled: bool = False) -> None:
        """Output ``volts`` on heater channels ``positions``; the rings start settling now.

        ``settled`` skips the transient: for an instrument that has held its outputs for a long time
        (state restored at start-up).
        """
        now = self.clock.now()
        start = self.effective_power_mw(now)
        flat = self._heater_volts.reshape(-1).clone()
        flat[positions.to(self.device)] = self.quantise_heater_volts(volts.to(self.device, self.dtype))
        self._heater_volts = flat.view(self.rows, self.cols)
        self._power_target = heater_power_mw(self._heater_volts, self.truth.heater_resistance_ohm)
        self._power_start = self._power_target.clone() if settled else start
        self._settle_from = now

    def set_ambient(self, delta_k: float) -> None:
        """Chip temperature change from the reference, in K; every resonance moves by ``drift·ΔT``."""
        self.ambient_delta_k = float(delta_k)

    def effective_power_mw(self, at: float | Tensor | None = None) -> Tensor:
        """Heater power each ring has reached at time ``at`` (default now).

        ``(R, C)`` for one time, ``(B, R, C)`` for a tensor of ``B`` times.
        """
        at = self.clock.now() if at is None else at
        elapsed = torch.as_tensor(at, dtype=torch.float64, device=self.device) - self._settle_from
        remaining = self._remaining_fraction(elapsed).to(self.dtype)[..., None, None]
        return self._power_target + (self._power_start - self._power_target) * remaining

    def _remaining_fraction(self, elapsed: Tensor) -> Tensor:
        if self.config.heater_tau_s == 0:
            return torch.zeros_like(elapsed)
        return torch.exp(-elapsed.clamp_min(0) / self.config.heater_tau_s)

    # -- measurement ------------------------------------------------------------------------------------

    def ideal(self, mod_volts: Tensor) -> Tensor:
        """Noiseless, unquantised detector volts ``(B, R)`` at the present heater state; the clock does not move."""
        mod_volts = self._as_batch(mod_volts)
        weights = weights_from_power(self.truth, self.effective_power_mw(), self.ambient_delta_k)
        return balanced_readout(self.truth, weights, self._input_power_mw(mod_volts))

    def stream(self, modulator_volts: Tensor) -> Tensor:
        """Detector volts ``(B, R)`` for ``B`` modulator settings ``(B, C)`` sampled back to back.

        Sample ``b`` is taken ``b·sample_time_s`` after the call; the clock advances by ``B·sample_time_s``.
        """
        mod_volts = self._as_batch(modulator_volts)
        samples = mod_volts.shape[0]
        times = self.clock.now() + self.config.sample_time_s * torch.arange(
            samples, dtype=torch.float64, device=self.device
        )
        readings = self._measure(mod_volts, times)
        self.clock.sleep(samples * self.config.sample_time_s)
        return readings

    def read_detectors(self) -> Tensor:
        """One reading ``(R,)`` at the present modulator drive, as the detector instrument takes it.

        The command crosses the bus, then the detector integrates for one sample time.
        """
        self.clock.sleep(self.config.bus_latency_s)
        times = torch.tensor([self.clock.now()], dtype=torch.float64, device=self.device)
        reading = self._measure(self._modulator_volts.unsqueeze(0), times)[0]
        self.clock.sleep(self.config.sample_time_s)
        return reading

    def noise_sigma_v(self, mod_volts: Tensor) -> Tensor:
        """Analytic std ``(B, R)`` of one reading (thermal, shot, RIN; before ADC quantisation).

        With the heaters settled, for checking the noise model and for noise-aware training.
        """
        cfg = self.config
        mod_volts = self._as_batch(mod_volts)
        power = self._input_power_mw(mod_volts)
        weights = weights_from_power(self.truth, self.effective_power_mw(), self.ambient_delta_k)
        gain = self.truth.readout_volts_per_mw
        current_var = cfg.thermal_noise_a**2 + self._shot_variance(power)
        rin_var = (cfg.rin_sigma * gain) ** 2 * (power.unsqueeze(-2) * weights).square().sum(-1)
        return (self._tia_gain() ** 2 * current_var + rin_var).sqrt()

    def fresh_chips(self, count: int, first_seed: int | None = None) -> MRRChipParams:
        """``count`` other chips of this design, seeds ``first_seed, first_seed + 1, …`` (default: after this one)."""
        start = self.seed + 1 if first_seed is None else first_seed
        seeds = range(start, start + count)
        return draw_chips(self.config, self.rows, self.cols, seeds, self.device, self.dtype)

    def _input_power_mw(self, mod_volts: Tensor) -> Tensor:
        """Optical power per channel after the modulators, lit by the bench's laser where it has one."""
        return modulator_power_mw(self.truth, mod_volts) * light_scale(self.light)

    def _tia_gain(self) -> Tensor:
        """Per-row transimpedance (Ω), spread included: volts per amp of balanced photocurrent."""
        return self.truth.readout_volts_per_mw / (self.config.responsivity_a_per_w * 1e-3)

    def _shot_variance(self, power_mw: Tensor) -> Tensor:
        """``2qIB`` (A²) on the sum of both photodiodes' currents, ``(B, 1)``.

        Drop plus through carry all the light (lossless), so the sum is ``ℜ·Σ_c P_c`` whatever the weights.
        """
        current = self.config.responsivity_a_per_w * 1e-3 * power_mw.sum(-1, keepdim=True)
        return self.config.shot_variance(current)

    def _measure(self, mod_volts: Tensor, times: Tensor) -> Tensor:
        """Detector volts ``(B, R)`` for drives ``(B, C)`` sampled at ``times`` ``(B,)``: noise, then the ADC."""
        cfg = self.config
        power = self._input_power_mw(mod_volts)
        optical = power
        if cfg.noise and cfg.rin_sigma > 0:
            # RIN rides on each channel's light before it splits, so it is common to every row.
            optical = power * (1 + cfg.rin_sigma * self._randn(power.shape))
        volts = self._readout(optical, times)
        if cfg.noise:
            current_sigma = (cfg.thermal_noise_a**2 + self._shot_variance(power)).sqrt()
            volts = volts + self._tia_gain() * current_sigma * self._randn(volts.shape)
        return self.config.adc(volts)

    def _readout(self, power_mw: Tensor, times: Tensor) -> Tensor:
        """Noiseless volts with the heater state of each sample's time; one weight map once settled."""
        gap = float((self._power_start - self._power_target).abs().max())
        first = times[:1] - self._settle_from
        if gap * float(self._remaining_fraction(first)[0]) < _SETTLED_MW:
            weights = weights_from_power(self.truth, self._power_target, self.ambient_delta_k)
            return balanced_readout(self.truth, weights, power_mw)
        chunk = max(1, _TRANSIENT_CHUNK // (self.rows * self.cols))
        parts = []
        for begin in range(0, times.shape[0], chunk):
            at = times[begin : begin + chunk]
            weights = weights_from_power(self.truth, self.effective_power_mw(at), self.ambient_delta_k)
            parts.append(balanced_readout(self.truth, weights, power_mw[begin : begin + chunk].unsqueeze(-2)))
        return torch.cat(parts).squeeze(-2)


# -- instruments ----------------------------------------------------------------------------------------


class DetectedChip(Protocol):
    """What a :class:`SimDetector` needs from the simulated chip behind it (any simulator)."""

    config: DetectionConfig
    clock: Clock
    seed: int
    detector_kind: str

    @property
    def label(self) -> str: ...

    def channel_count(self, role: str) -> int: ...

    def read_detectors(self) -> Tensor: ...


class SimulatedChip(DetectedChip, Protocol):
    """What the simulated voltage sources also need: an integrated chip with heaters and modulators (MRR, MZI)."""

    config: InstrumentConfig

    @property
    def heater_volts(self) -> Tensor: ...

    @property
    def modulator_volts(self) -> Tensor: ...

    def set_heaters(self, positions: Tensor, volts: Tensor, *, settled: bool = False) -> None: ...

    def set_modulators(self, positions: Tensor, volts: Tensor) -> None: ...


class VoltageWrite(NamedTuple):
    """One write a simulated source received (bench-clock time, channel positions, volts)."""

    time_s: float
    positions: np.ndarray
    volts: np.ndarray


Role = Literal["heaters", "modulators"]


class SimVoltageSource:
    """The heater driver or the modulator driver of a simulated chip (MRR bank: ring ``(r, c)`` on ``r·cols + c``).

    Every write costs one bus latency on the clock and is kept in :attr:`history`, so tests can prove
    what the guard let through. With ``state_path`` the outputs survive the process, as a real
    instrument keeps driving its outputs after the software that set them has exited. The file is
    rewritten at most every :data:`STATE_SAVE_INTERVAL_S` of wall time during fast sequences (training
    programs thousands of tiles), and always on ``outputs_off`` and ``close``; only a process killed
    outright can leave it that much behind.
    """

    def __init__(self, chip: SimulatedChip, role: Role, name: str = "", state_path: Path | None = None) -> None:
        if role not in ("heaters", "modulators"):
            raise ValueError(f"role must be 'heaters' or 'modulators', not {role!r}")
        self.chip = chip
        self.role = role
        self.name = name or role
        self.state_path = state_path
        self.history: list[VoltageWrite] = []
        self._saved_at = -math.inf
        self._unsaved = False
        self._timer: threading.Timer | None = None
        self._save_lock = threading.Lock()
        count = chip.channel_count(role)
        self._count = count
        if state_path is not None and state_path.exists():
            self._restore(state_path)

    @property
    def n_channels(self) -> int:
        return self._count

    def identity(self) -> str:
        kind = "heater driver" if self.role == "heaters" else "modulator driver"
        return f"labsat simulated {kind}, {self._count} channels ({self.chip.label})"

    def write_voltages(self, positions: np.ndarray, volts: np.ndarray) -> None:
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        volts = np.asarray(volts, dtype=np.float64).reshape(-1)
        if positions.shape != volts.shape:
            raise InstrumentError(f"{self.name}: {positions.size} channels but {volts.size} values")
        if positions.size and (positions.min() < 0 or positions.max() >= self._count):
            raise InstrumentError(f"{self.name}: channel positions must lie in 0..{self._count - 1}")
        self.chip.clock.sleep(self.chip.config.bus_latency_s)
        self._apply(positions, volts)
        self.history.append(VoltageWrite(self.chip.clock.now(), positions.copy(), volts.copy()))
        self._unsaved = True
        self._schedule_save()

    def read_voltages(self) -> np.ndarray:
        """Present outputs (the heater DAC's quantised values); the instrument's cached state, no bus time."""
        source = self.chip.heater_volts if self.role == "heaters" else self.chip.modulator_volts
        return source.reshape(-1).cpu().numpy().astype(np.float64)

    def outputs_off(self) -> None:
        """All channels to 0 V (the simulated instrument has no separate off state); recorded as a write."""
        self.write_voltages(np.arange(self._count), np.zeros(self._count))
        self._save()

    def close(self) -> None:
        """Persist the last outputs (the bench closes its instruments after its safe state)."""
        if self._unsaved:
            self._save()

    def _schedule_save(self) -> None:
        """Save now if the last save is old enough, else once the interval has passed (a daemon timer)."""
        if self.state_path is None:
            return
        wait = self._saved_at + STATE_SAVE_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._save()
        elif self._timer is None or not self._timer.is_alive():
            self._timer = threading.Timer(wait, self._save_if_unsaved)
            self._timer.daemon = True
            self._timer.start()

    def _save_if_unsaved(self) -> None:
        if self._unsaved:
            self._save()

    def _apply(self, positions: np.ndarray, volts: np.ndarray, *, settled: bool = False) -> None:
        index = torch.as_tensor(positions)
        values = torch.as_tensor(volts)
        if self.role == "heaters":
            self.chip.set_heaters(index, values, settled=settled)
        else:
            self.chip.set_modulators(index, values)

    def _save(self) -> None:
        if self.state_path is None:
            return
        with self._save_lock:
            self._saved_at, self._unsaved = time.monotonic(), False
            self._write_state(self.state_path)

    def _write_state(self, path: Path) -> None:
        """Atomic write: a crash mid-save must leave the previous state, not half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"role": self.role, "n_channels": self._count, "volts": self.read_voltages().tolist()}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(state, file)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _restore(self, path: Path) -> None:
        """Outputs left by an earlier process; the heaters have been holding them, so they are settled."""
        try:
            state = json.loads(path.read_text())
            volts = np.asarray(state["volts"], dtype=np.float64)
            role, count = state["role"], int(state["n_channels"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InstrumentError(f"{self.name}: cannot read the simulated instrument state {path}: {exc}") from None
        if role != self.role or count != self._count or volts.shape != (count,):
            raise InstrumentError(
                f"{self.name}: state file {path} belongs to a {count}-channel {role} source, not this "
                f"{self._count}-channel {self.role} source; delete it to start from 0 V"
            )
        self._apply(np.arange(count), volts, settled=True)


class SimDetector:
    """The chip's photodetector array (MRR: one balanced pair per row), in volts at the ADC."""

    def __init__(self, chip: DetectedChip, name: str = "detectors") -> None:
        self.chip = chip
        self.name = name

    @property
    def n_channels(self) -> int:
        return self.chip.channel_count("detectors")

    @property
    def integration_time(self) -> float:
        return self.chip.config.sample_time_s

    def identity(self) -> str:
        return (
            f"labsat simulated {self.chip.detector_kind}, {self.n_channels} channels "
            f"({self.chip.config.adc_bits}-bit ADC, ±{self.chip.config.adc_full_scale_v:g} V)"
        )

    def read(self) -> np.ndarray:
        return self.chip.read_detectors().cpu().numpy().astype(np.float64)
