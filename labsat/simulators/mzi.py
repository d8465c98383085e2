"""Simulated MZI mesh: one chip (ground truth, hidden from callers) behind the shared simulated instruments.

:class:`MZIChipSimulator` holds what a real mesh bench has: the heater DAC outputs (two heaters per
MZI), the input amplitude modulators (one per mode) and one photodetector per output mode. Its errors
are drawn once per chip seed: coupler split errors ε ~ N(0, σ_bs²), phase errors on θ and φ
~ N(0, σ_ph²), and small spreads of ``P_π``, heater resistance, modulator ``V_π`` and detector gain.
The SAT paper's "device A" is σ_ph = σ_bs = 0.15.

The instruments are :class:`~labsat.simulators.instruments.SimVoltageSource` and
:class:`~labsat.simulators.instruments.SimDetector`, the same classes the MRR bank uses; the detection model
(thermal, shot and RIN noise, ADC) is the shared :class:`~labsat.simulators.detection.InstrumentConfig`.
Heaters are taken as settled at once: the System waits ``settle_time_s`` after programming anyway, and
the first-order transient lives in the MRR simulator only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor

from labsat.clock import Clock
from labsat.physics.mzi import MZIChipParams, mzi_count, output_intensities, transfer_matrix
from labsat.simulators.detection import InstrumentConfig
from labsat.simulators.draws import relative_spread, stream_seeds
from labsat.simulators.integrated import IntegratedChipSimulator
from labsat.simulators.light import light_scale


class MZISimConfig(InstrumentConfig):
    """Physics of a simulated MZI mesh (the ``simulator:`` section of a mesh bench file). Units: mW, V, Ω, rad."""

    sigma_bs: float = Field(0.15, ge=0, description="Std of each coupler's power-split error ε (device A: 0.15).")
    sigma_ph: float = Field(0.15, ge=0, description="Std of the phase error on every θ and φ, rad (device A: 0.15).")
    p_pi_mw: float = Field(25.0, gt=0, description="Heater power for a π phase shift.")
    p_pi_spread: float = Field(0.03, ge=0, description="Relative std of P_π between heaters' MZIs.")
    heater_resistance_ohm: float = Field(1000.0, gt=0, description="Heater resistance.")
    resistance_spread: float = Field(0.03, ge=0, description="Relative std of the heater resistance.")
    heater_dac_range_v: tuple[float, float] = Field(
        (0.0, 8.0), description="Heater DAC output range [min, max]; 2·P_π at 1 kΩ needs 7.1 V."
    )
    input_power_mw: float = Field(0.5, ge=0, description="Optical power per mode at full modulation.")


def _draw(config: MZISimConfig, modes: int, seed: int) -> tuple[MZIChipParams, Tensor, Tensor]:
    """Mesh truth, modulator ``V_π`` per mode and detector gain (V/mW) per mode of chip ``seed``, on the CPU."""
    generator = torch.Generator().manual_seed(stream_seeds(seed)[0])
    count = mzi_count(modes)

    def normal(std: float) -> Tensor:
        return std * torch.randn(count, generator=generator, dtype=torch.float64)

    def spread(shape: tuple[int, ...], relative: float) -> Tensor:
        return relative_spread(generator, shape, relative)

    params = MZIChipParams(
        theta_offset=normal(config.sigma_ph),
        phi_offset=normal(config.sigma_ph),
        split_in=normal(config.sigma_bs),
        split_out=normal(config.sigma_bs),
        p_pi_mw=config.p_pi_mw * spread((count,), config.p_pi_spread),
        heater_resistance_ohm=config.heater_resistance_ohm * spread((count,), config.resistance_spread),
    )
    v_pi = config.modulator_v_pi * spread((modes,), config.modulator_v_pi_spread)
    gain = config.responsivity_a_per_w * 1e-3 * config.tia_gain_ohm
    return params, v_pi, gain * spread((modes,), config.detector_gain_spread)


def chip_params(
    config: MZISimConfig,
    modes: int,
    seed: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> MZIChipParams:
    """The mesh of the chip fabricated with ``seed``: same seed, same chip, on any device."""
    return _draw(config, modes, seed)[0].to(device=device, dtype=dtype)


def draw_chips(
    config: MZISimConfig,
    modes: int,
    seeds: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> MZIChipParams:
    """A population of meshes ``(K, M)``, chip ``k`` the one a bench with ``seeds[k]`` simulates."""
    chips = [chip_params(config, modes, seed, device, dtype) for seed in seeds]
    return MZIChipParams(**{name: torch.stack([getattr(c, name) for c in chips]) for name in chips[0].tensors()})


class MZIChipSimulator(IntegratedChipSimulator[MZISimConfig]):
    """One simulated N-mode mesh with its heater DAC (``N(N−1)`` channels), modulators (``N``) and detectors (``N``).

    A modulator at drive ``V`` passes amplitude ``√P_in·sin(πV/(2V_π))`` into its mode (power ``sin²``, as
    the MRR bench's modulators); all modes share one laser, so their fields are in phase. Detector ``k``
    reads ``g_k·|Σ_j U_kj a_j|² + dark`` (V), with noise and the ADC.
    """

    detector_kind = "photodetector array"

    def __init__(
        self,
        config: MZISimConfig,
        modes: int,
        seed: int,
        clock: Clock,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__(config, modes, seed, clock, device, dtype)
        self.modes = modes
        truth, v_pi, gain = _draw(config, modes, seed)
        self.truth = truth.to(self.device, dtype)
        self.modulator_v_pi = v_pi.to(self.device, dtype)
        self.readout_volts_per_mw = gain.to(self.device, dtype)
        self._heater_volts = torch.zeros(2 * mzi_count(modes), device=self.device, dtype=dtype)
        self._unitary = transfer_matrix(self.truth, self._heater_volts)

    @property
    def label(self) -> str:
        return f"{self.modes}-mode MZI mesh, seed {self.seed}"

    def channel_count(self, role: str) -> int:
        return {"heaters": 2 * mzi_count(self.modes), "modulators": self.modes, "detectors": self.modes}[role]

    @property
    def heater_volts(self) -> Tensor:
        """Present heater DAC outputs ``(N(N−1),)`` (after quantisation)."""
        return self._heater_volts.clone()

    @property
    def unitary(self) -> Tensor:
        """The mesh's present transfer matrix (ground truth; for tests and error reports)."""
        return self._unitary.clone()

    def set_heaters(self, positions: Tensor, volts: Tensor, *, settled: bool = False) -> None:
        """Output ``volts`` on heater channels ``positions`` (``settled`` is accepted for the shared instruments)."""
        heaters = self._heater_volts.clone()
        heaters[positions.to(self.device)] = self.config.quantise_heater_volts(volts.to(self.device, self.dtype))
        self._heater_volts = heaters
        self._unitary = transfer_matrix(self.truth, heaters)

    # -- measurement ------------------------------------------------------------------------------------

    def input_amplitudes(self, mod_volts: Tensor) -> Tensor:
        """Field amplitude (√mW) each modulator sends into its mode, ``(B, N)``."""
        power_mw = self.config.input_power_mw * light_scale(self.light)
        return math.sqrt(power_mw) * torch.sin(mod_volts * (math.pi / 2) / self.modulator_v_pi)

    def ideal(self, mod_volts: Tensor) -> Tensor:
        """Noiseless, unquantised detector volts ``(B, N)``; the clock does not move."""
        power = output_intensities(self._unitary, self.input_amplitudes(self._as_batch(mod_volts)))
        return power * self.readout_volts_per_mw + self.config.dark_volts

    def stream(self, modulator_volts: Tensor) -> Tensor:
        """Detector volts ``(B, N)`` for ``B`` modulator settings sampled back to back (``B`` samples of clock)."""
        mod_volts = self._as_batch(modulator_volts)
        readings = self._measure(mod_volts)
        self.clock.sleep(mod_volts.shape[0] * self.config.sample_time_s)
        return readings

    def read_detectors(self) -> Tensor:
        """One reading ``(N,)`` at the present modulator drive: a bus command, then one sample."""
        self.clock.sleep(self.config.bus_latency_s)
        reading = self._measure(self._modulator_volts.unsqueeze(0))[0]
        self.clock.sleep(self.config.sample_time_s)
        return reading

    def fresh_chips(self, count: int, first_seed: int | None = None) -> MZIChipParams:
        """``count`` other meshes of this design, seeds ``first_seed, first_seed + 1, …`` (default: after this one)."""
        start = self.seed + 1 if first_seed is None else first_seed
        return draw_chips(self.config, self.modes, range(start, start + count), self.device, self.dtype)

    def _measure(self, mod_volts: Tensor) -> Tensor:
        """Detector volts for drives ``(B, N)``: the mesh, then the laser's RIN, thermal and shot noise, the ADC."""
        power = output_intensities(self._unitary, self.input_amplitudes(mod_volts))
        return self.config.detect(power, self.readout_volts_per_mw, self._randn)
