"""Simulated MRR weight bank: one chip (ground truth, hidden from callers) behind simulated instruments.

:class:`MRRChipSimulator` owns the physical state a real bench has: what the heater DAC outputs, what
the rings' heaters have actually reached (first-order settling on the bench clock), what the input
modulators drive, and the ambient temperature. The instruments (``SimVoltageSource`` and
``SimDetector`` of :mod:`labsat.simulators.instruments`) are thin views on it, so a heater write moves
a detector reading exactly as on the bench. The chip also streams whole batches
(:meth:`MRRChipSimulator.stream`), the fast path a waveform generator plus triggered DAQ gives a real
bench; both paths share one measurement model.

Time only ever advances through the bench clock (never ``time.sleep``): a simulated run finishes
quickly yet reports how long it would have taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor

from labsat.clock import Clock
from labsat.physics.mrr import (
    MRRChipParams,
    balanced_readout,
    heater_power_mw,
    modulator_power_mw,
    thermal_kernel,
    weights_from_power,
)
from labsat.simulators.detection import InstrumentConfig, StrictConfig
from labsat.simulators.draws import relative_spread, stream_seeds
from labsat.simulators.integrated import IntegratedChipSimulator
from labsat.simulators.light import light_scale

_SETTLED_MW = 1e-9
"""Heater power still to settle below which the chip counts as settled (≈1e-10 nm of resonance)."""
_TRANSIENT_CHUNK = 1 << 20
"""Largest number of ring-samples evaluated at once while heaters settle during a stream."""


class CrosstalkConfig(StrictConfig):
    """Thermal crosstalk: fraction of a heater's power reaching first neighbours; second ones get ``× decay``."""

    horizontal: float = Field(0.08, ge=0, description="Neighbour in the same row (adjacent WDM channel).")
    vertical: float = Field(0.04, ge=0, description="Neighbour in the same column (adjacent output row).")
    diagonal: float = Field(0.02, ge=0, description="Diagonal neighbour.")
    decay: float = Field(0.3, ge=0, le=1, description="Second neighbours receive first-neighbour fraction × decay.")


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
    generator = torch.Generator().manual_seed(stream_seeds(seed)[0])

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


class MRRChipSimulator(IntegratedChipSimulator[MRRSimConfig]):
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
