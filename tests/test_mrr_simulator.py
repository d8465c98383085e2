"""Simulated MRR bank (labsat.simulators.mrr and the ``sim`` driver): chip draws, settling, DACs, noise, devices."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labsat.benchfile import BenchFile
from labsat.clock import VirtualClock
from labsat.devices import BatchStreamer, Detector, VoltageSource
from labsat.errors import BenchFileError, InstrumentError
from labsat.physics.compute import default_device
from labsat.physics.mrr import balanced_readout, heater_power_mw, modulator_power_mw, weights_from_power
from labsat.registry import BenchContext
from labsat.simulators import instruments
from labsat.simulators.instruments import SimDetector, SimVoltageSource
from labsat.simulators.mrr import MRRChipSimulator, MRRSimConfig, chip_params, draw_chips
from labsat.simulators.plugin import build_sim_device
from labsat.truth import SIMULATED_CHIP

ROWS, COLS = 4, 6
QUIET = {"noise": False, "adc_bits": 24}


def make_chip(seed: int = 3, **overrides: Any) -> MRRChipSimulator:
    return MRRChipSimulator(MRRSimConfig(**overrides), ROWS, COLS, seed, VirtualClock(), "cpu")


def settle(chip: MRRChipSimulator, heater_volts: torch.Tensor) -> None:
    """Program every heater and wait fifty time constants."""
    chip.set_heaters(torch.arange(ROWS * COLS), heater_volts.reshape(-1))
    chip.clock.sleep(50 * chip.config.heater_tau_s)


def random_volts(seed: int, shape: tuple[int, ...], high: float) -> torch.Tensor:
    return high * torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def expected_volts(chip: MRRChipSimulator, power_mw: torch.Tensor, mod_volts: torch.Tensor) -> torch.Tensor:
    """Noiseless detector volts computed straight from the physics module and the chip's ground truth."""
    weights = weights_from_power(chip.truth, power_mw, chip.ambient_delta_k)
    return balanced_readout(chip.truth, weights, modulator_power_mw(chip.truth, mod_volts))


# -- the chip ------------------------------------------------------------------------------------------


def test_same_seed_same_chip_and_noise_different_seed_different_chip() -> None:
    first, again, other = make_chip(seed=11), make_chip(seed=11), make_chip(seed=12)
    for name, value in first.truth.tensors().items():
        torch.testing.assert_close(value, again.truth.tensors()[name], rtol=0, atol=0)
    assert not torch.equal(first.truth.rest_resonance_nm, other.truth.rest_resonance_nm)
    inputs = random_volts(0, (32, COLS), 2.0)
    torch.testing.assert_close(first.stream(inputs), again.stream(inputs), rtol=0, atol=0)
    assert not torch.equal(first.stream(inputs), first.stream(inputs))  # fresh noise on every sample


def test_fabrication_scatter_follows_the_config() -> None:
    config = MRRSimConfig(fab_sigma_nm=0.08, fwhm_spread=0.03, efficiency_spread=0.05)
    truth = chip_params(config, 64, 64, seed=5)
    design = truth.channel_wavelength_nm - config.rest_detuning_nm
    assert (truth.rest_resonance_nm - design).std().item() == pytest.approx(0.08, rel=0.05)
    assert (truth.fwhm_nm / 0.3).std().item() == pytest.approx(0.03, rel=0.05)
    assert (truth.efficiency_nm_per_mw / 0.2).std().item() == pytest.approx(0.05, rel=0.05)
    torch.testing.assert_close(
        truth.channel_wavelength_nm[1:] - truth.channel_wavelength_nm[:-1], torch.full((63,), 0.8, dtype=torch.float64)
    )
    assert truth.crosstalk_kernel[2, 3] == pytest.approx(0.08) and truth.crosstalk_kernel[0, 2] == pytest.approx(0.012)


def test_monte_carlo_population_is_the_chips_other_seeds_would_give() -> None:
    chip = make_chip(seed=20)
    population = chip.fresh_chips(3)
    assert population.rest_resonance_nm.shape == (3, ROWS, COLS)
    for k in range(3):
        single = chip_params(chip.config, ROWS, COLS, 21 + k)
        torch.testing.assert_close(population.select(k).rest_resonance_nm, single.rest_resonance_nm)
    assert not torch.equal(population.rest_resonance_nm[0], chip.truth.rest_resonance_nm)
    pair = draw_chips(chip.config, ROWS, COLS, [20, 20])
    torch.testing.assert_close(pair.select(1).fwhm_nm, chip.truth.fwhm_nm)


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="extra"):
        MRRSimConfig(fwhm=0.3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="min < max"):
        MRRSimConfig(heater_dac_range_v=(4.0, 0.0))
    with pytest.raises(ValueError):
        MRRSimConfig(crosstalk={"horizontal": -0.1})  # type: ignore[arg-type]


def test_heater_dac_quantises_and_clips() -> None:
    chip = make_chip(heater_dac_bits=4, heater_dac_range_v=(0.0, 4.0), **QUIET)
    step = 4.0 / 15
    source = SimVoltageSource(chip, "heaters")
    source.write_voltages(np.array([0, 1, 2, 3]), np.array([1.0, 5.0, -1.0, 2.1]))
    np.testing.assert_allclose(source.read_voltages()[:4], [4 * step, 4.0, 0.0, 8 * step])
    chip.clock.sleep(1.0)
    written = torch.tensor([4 * step, 4.0, 0.0, 8 * step], dtype=torch.float64)
    expected_power = heater_power_mw(written, chip.truth.heater_resistance_ohm.reshape(-1)[:4])
    torch.testing.assert_close(chip.effective_power_mw().reshape(-1)[:4], expected_power)


def test_heater_settling_follows_the_thermal_time_constant() -> None:
    chip = make_chip(heater_tau_s=2e-3, **QUIET)
    tau = 2e-3
    volts = random_volts(1, (ROWS, COLS), 3.0)
    target = heater_power_mw(chip.quantise_heater_volts(volts), chip.truth.heater_resistance_ohm)
    chip.set_heaters(torch.arange(ROWS * COLS), volts.reshape(-1))
    start = chip.clock.now()
    for k in (0.0, 0.5, 1.0, 3.0):
        torch.testing.assert_close(chip.effective_power_mw(start + k * tau), target * (1 - math.exp(-k)))
    # A second step mid-transient starts from where the heaters are, not from the old target.
    chip.clock.sleep(tau)
    halfway = chip.effective_power_mw()
    chip.set_heaters(torch.arange(ROWS * COLS), torch.zeros(ROWS * COLS, dtype=torch.float64))
    torch.testing.assert_close(chip.effective_power_mw(), halfway)
    torch.testing.assert_close(chip.effective_power_mw(chip.clock.now() + tau), halfway * math.exp(-1))


def test_readings_before_settling_show_the_transient() -> None:
    chip = make_chip(**QUIET)
    tau = chip.config.heater_tau_s
    mod = random_volts(2, (1, COLS), 2.0)
    chip.set_modulators(torch.arange(COLS), mod[0])
    volts = random_volts(3, (ROWS, COLS), 3.0)
    target = heater_power_mw(chip.quantise_heater_volts(volts), chip.truth.heater_resistance_ohm)
    chip.set_heaters(torch.arange(ROWS * COLS), volts.reshape(-1))
    written = chip.clock.now()
    detector = SimDetector(chip)
    reading = detector.read()  # taken one bus latency after the write
    elapsed = chip.config.bus_latency_s
    expected = expected_volts(chip, target * (1 - math.exp(-elapsed / tau)), mod)[0]
    np.testing.assert_allclose(reading, expected.numpy(), atol=chip.config.adc_step_v)
    settled = expected_volts(chip, target, mod)[0]
    assert np.abs(reading - settled.numpy()).max() > 0.05  # visibly not settled yet
    # A stream straight after a write sees every sample at its own heater state.
    chip.set_heaters(torch.arange(ROWS * COLS), torch.zeros(ROWS * COLS, dtype=torch.float64))
    chip.set_heaters(torch.arange(ROWS * COLS), volts.reshape(-1), settled=False)
    begun = chip.clock.now()
    samples = 3000  # three time constants
    streamed = chip.stream(mod.expand(samples, COLS))
    times = begun + chip.config.sample_time_s * torch.arange(samples, dtype=torch.float64)
    start_power = chip.effective_power_mw(begun)  # zero after the reset step, up to its own short transient
    fractions = torch.exp(-(times - begun) / tau).view(-1, 1, 1)
    powers = target + (start_power - target) * fractions
    weights = weights_from_power(chip.truth, powers, 0.0)
    expected_stream = balanced_readout(chip.truth, weights, modulator_power_mw(chip.truth, mod).unsqueeze(0))[:, 0]
    torch.testing.assert_close(streamed, expected_stream, atol=chip.config.adc_step_v, rtol=0)
    assert (streamed[0] - streamed[-1]).abs().max() > 0.05
    assert written < begun


def test_ambient_drift_shifts_every_ring_by_80_pm_per_kelvin() -> None:
    chip = make_chip(**QUIET)
    settle(chip, random_volts(4, (ROWS, COLS), 3.0))
    mod = random_volts(5, (8, COLS), 2.0)
    before = chip.ideal(mod)
    chip.set_ambient(-2.0)
    shifted = dataclasses.replace(chip.truth, rest_resonance_nm=chip.truth.rest_resonance_nm - 0.16)
    weights = weights_from_power(shifted, chip.effective_power_mw())
    torch.testing.assert_close(chip.ideal(mod), balanced_readout(shifted, weights, modulator_power_mw(shifted, mod)))
    assert (chip.ideal(mod) - before).abs().max() > 0.01


@pytest.mark.parametrize(
    "levels",
    [
        pytest.param({}, id="thermal"),
        pytest.param(
            {"thermal_noise_a": 0.0, "rin_db_per_hz": -300.0, "bandwidth_hz": 1e11, "adc_bits": 24}, id="shot"
        ),
        pytest.param({"thermal_noise_a": 0.0, "rin_db_per_hz": -100.0, "adc_bits": 24}, id="rin"),
    ],
)
def test_noise_statistics_match_the_analytic_levels(levels: dict[str, Any]) -> None:
    chip = make_chip(**levels)
    settle(chip, random_volts(6, (ROWS, COLS), 3.0))
    samples = 6000
    for drive in (2.0, 1.0):  # two light levels: shot noise grows as √I, RIN with the signal
        mod = torch.full((1, COLS), drive, dtype=torch.float64)
        readings = chip.stream(mod.expand(samples, COLS))
        sigma = (chip.noise_sigma_v(mod)[0].square() + chip.config.adc_step_v**2 / 12).sqrt()
        torch.testing.assert_close(readings.std(0), sigma, rtol=0.06, atol=0)
        torch.testing.assert_close(readings.mean(0), chip.ideal(mod)[0], rtol=0, atol=float(5 * sigma.max()) / 70)
    if levels.get("rin_db_per_hz") == -100.0:
        # RIN rides on the shared input light, so rows fluctuate together as Σ_c g_r·g_s·w_rc·w_sc·(σ·P_c)².
        power = modulator_power_mw(chip.truth, mod)[0]
        scaled = chip.truth.readout_volts_per_mw[:, None] * weights_from_power(chip.truth, chip.effective_power_mw())
        covariance = (scaled * chip.config.rin_sigma * power) @ (scaled * chip.config.rin_sigma * power).T
        measured = torch.cov(readings.T)
        assert (measured - covariance).abs().max() < 0.1 * covariance.diagonal().max()


def test_noise_levels_have_the_textbook_magnitudes() -> None:
    """The analytic σ the statistics test relies on, pinned to the formulas written out independently."""
    chip = make_chip(rin_db_per_hz=-150.0, bandwidth_hz=1e9)  # thermal, shot and RIN all of similar size
    settle(chip, random_volts(13, (ROWS, COLS), 3.0))
    assert chip.config.rin_sigma == pytest.approx(math.sqrt(10**-15 * 1e9))
    light = random_volts(14, (1, COLS), 2.0)
    power_w = 1e-3 * modulator_power_mw(chip.truth, light)[0]  # W per channel
    tia = chip.truth.readout_volts_per_mw / 1e-3  # Ω: responsivity 1 A/W
    shot_a2 = 2 * 1.602176634e-19 * float(power_w.sum()) * 1e9  # 2qIB on drop + through current
    weights = weights_from_power(chip.truth, chip.effective_power_mw())
    rin_a2 = ((weights * power_w).square().sum(-1)) * chip.config.rin_sigma**2  # RIN on each channel's light
    expected = tia * torch.sqrt(1e-12 + shot_a2 + rin_a2)
    assert shot_a2 > 0.3e-12 and float(rin_a2.min()) > 0.3e-12
    torch.testing.assert_close(chip.noise_sigma_v(light)[0], expected, rtol=1e-9, atol=0)
    dark = torch.zeros(1, COLS, dtype=torch.float64)
    torch.testing.assert_close(chip.noise_sigma_v(dark)[0], tia * 1e-6, rtol=1e-9, atol=0)  # thermal noise only


def test_adc_quantises_and_clips_at_full_scale() -> None:
    chip = make_chip(noise=False, adc_bits=6, adc_full_scale_v=1.0)
    step = 2.0 / 64
    settle(chip, random_volts(7, (ROWS, COLS), 3.0))
    mod = random_volts(8, (200, COLS), 2.0)
    readings = chip.stream(mod)
    codes = readings / step
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-9)
    torch.testing.assert_close(readings, (chip.ideal(mod) / step).round().clamp(-32, 31) * step, rtol=0, atol=1e-12)
    assert readings.min() == -1.0  # full light on rings off resonance: far below −1 V
    bright = make_chip(noise=False, adc_bits=6, adc_full_scale_v=1.0, dark_volts=2.0)
    assert bright.stream(torch.zeros(3, COLS, dtype=torch.float64)).unique().tolist() == [1.0 - step]


# -- the instruments ----------------------------------------------------------------------------------


def test_device_path_agrees_with_the_batched_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("a simulator slept for real"))
    chip = make_chip(seed=9)
    heaters, modulators = SimVoltageSource(chip, "heaters"), SimVoltageSource(chip, "modulators")
    detector = SimDetector(chip)
    heaters.write_voltages(np.arange(ROWS * COLS), random_volts(10, (ROWS * COLS,), 3.0).numpy())
    chip.clock.sleep(0.05)
    drives = random_volts(11, (24, COLS), 2.0)
    started = chip.clock.now()
    device_path = []
    for drive in drives:
        modulators.write_voltages(np.arange(COLS), drive.numpy())
        device_path.append(detector.read())
    latency, sample = chip.config.bus_latency_s, chip.config.sample_time_s
    assert chip.clock.now() - started == pytest.approx(24 * (2 * latency + sample))
    streamed = chip.stream(drives)
    assert chip.clock.now() - started == pytest.approx(24 * (2 * latency + sample) + 24 * sample)
    sigma = chip.noise_sigma_v(drives)
    difference = torch.as_tensor(np.stack(device_path)) - streamed
    assert (difference.abs() <= 5 * math.sqrt(2) * sigma + 2 * chip.config.adc_step_v).all()
    assert (streamed - chip.ideal(drives)).abs().mean() < 2 * sigma.mean()


def test_voltage_sources_keep_a_history_and_switch_off() -> None:
    chip = make_chip()
    heaters = SimVoltageSource(chip, "heaters", name="heaters")
    assert isinstance(heaters, VoltageSource) and isinstance(SimDetector(chip), Detector)
    assert isinstance(chip, BatchStreamer)
    assert heaters.n_channels == ROWS * COLS and SimVoltageSource(chip, "modulators").n_channels == COLS
    heaters.write_voltages(np.array([2, 5]), np.array([1.0, 2.0]))
    assert len(heaters.history) == 1
    when, positions, volts = heaters.history[0]
    assert when == pytest.approx(chip.config.bus_latency_s)
    assert positions.tolist() == [2, 5] and volts.tolist() == [1.0, 2.0]
    assert chip.heater_volts[0, 2] == pytest.approx(1.0, abs=1e-4) and chip.heater_volts[0, 5] == pytest.approx(
        2.0, abs=1e-4
    )
    heaters.outputs_off()
    assert len(heaters.history) == 2 and not heaters.read_voltages().any()
    with pytest.raises(InstrumentError, match=r"0\.\.23"):
        heaters.write_voltages(np.array([24]), np.array([1.0]))
    assert len(heaters.history) == 2
    assert "24 channels" in heaters.identity() and "seed 3" in heaters.identity()


def test_instrument_state_survives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "state" / "heaters.json"
    chip = make_chip(**QUIET)
    heaters = SimVoltageSource(chip, "heaters", state_path=path)
    heaters.write_voltages(np.arange(ROWS * COLS), random_volts(12, (ROWS * COLS,), 3.0).numpy())
    assert json.loads(path.read_text())["volts"] == heaters.read_voltages().tolist()
    assert not list(path.parent.glob("*.tmp"))  # written atomically, nothing left over
    reopened_chip = make_chip(**QUIET)
    reopened = SimVoltageSource(reopened_chip, "heaters", state_path=path)
    np.testing.assert_array_equal(reopened.read_voltages(), heaters.read_voltages())
    assert reopened.history == []  # restoring is not a write
    settled = heater_power_mw(reopened_chip.heater_volts, reopened_chip.truth.heater_resistance_ohm)
    torch.testing.assert_close(reopened_chip.effective_power_mw(), settled)  # held for long: no transient
    with pytest.raises(InstrumentError, match="delete it"):
        SimVoltageSource(make_chip(), "modulators", state_path=path)
    path.write_text("{not json")
    with pytest.raises(InstrumentError, match="cannot read"):
        SimVoltageSource(make_chip(), "heaters", state_path=path)


def test_chip_follows_the_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABSAT_DEVICE", "cpu")
    chip = MRRChipSimulator(MRRSimConfig(), ROWS, COLS, 0, VirtualClock())
    assert chip.device == default_device() == torch.device("cpu")
    assert chip.truth.rest_resonance_nm.device.type == "cpu"
    assert chip.stream(torch.zeros(2, COLS, dtype=torch.float32)).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_chip_on_cuda_is_the_same_chip() -> None:
    on_gpu = MRRChipSimulator(MRRSimConfig(), ROWS, COLS, 4, VirtualClock(), "cuda")
    torch.testing.assert_close(on_gpu.truth.rest_resonance_nm.cpu(), make_chip(seed=4).truth.rest_resonance_nm)
    assert on_gpu.stream(torch.ones(16, COLS)).device.type == "cuda"


# -- the sim driver -----------------------------------------------------------------------------------


def bench(simulator: dict[str, Any] | None = None, role: str = "heaters") -> BenchFile:
    limits = {"voltage": [0.0, 4.0]}
    return BenchFile.model_validate({
        "name": "plugin-test",
        "clock": "virtual",
        "seed": 5,
        "devices": {
            "heat": {"driver": "sim", "kind": "voltage_source", "channels": {"count": ROWS * COLS},
                     "limits": limits, "options": {"role": role}},
            "mods": {"driver": "sim", "kind": "voltage_source", "channels": {"count": COLS},
                     "limits": limits, "options": {"role": "modulators"}},
            "pds": {"driver": "sim", "kind": "detector", "channels": {"count": ROWS}, "options": {"role": "detectors"}},
        },
        "system": {"type": "mrr_bank", "rows": ROWS, "cols": COLS, "heaters": "heat", "modulators": "mods",
                   "detectors": "pds"},
        "simulator": simulator or {},
    })  # fmt: skip


def context(spec: BenchFile, data_dir: Path | None = None) -> BenchContext:
    return BenchContext(spec, "bench.yaml", VirtualClock(), torch.device("cpu"), data_dir)


def test_sim_driver_builds_one_shared_chip(tmp_path: Path) -> None:
    spec = bench({"fwhm_nm": 0.25, "crosstalk": {"horizontal": 0.1}})
    ctx = context(spec, tmp_path)
    devices = {name: build_sim_device(name, device, ctx) for name, device in spec.devices.items()}
    chip = ctx.shared[SIMULATED_CHIP]
    assert ctx.shared["streamer"] is chip and chip.seed == 5 and chip.clock is ctx.clock
    assert devices["heat"].chip is chip and devices["pds"].chip is chip
    assert (
        chip.config.fwhm_nm == 0.25
        and chip.config.crosstalk.horizontal == 0.1
        and chip.config.crosstalk.vertical == 0.04
    )
    devices["heat"].write_voltages(np.array([0]), np.array([1.0]))
    assert (tmp_path / "sim-state" / "plugin-test.heat.json").exists()
    assert devices["pds"].read().shape == (ROWS,)


def test_chip_streams_only_for_its_own_instruments() -> None:
    """Behind real drivers (emulated instruments) every sample must cross the wire: no streaming shortcut."""
    spec = bench()
    devices = {**spec.devices, "mods": spec.devices["mods"].model_copy(update={"driver": "scpi_dac"})}
    emulated = spec.model_copy(update={"devices": devices})
    ctx = context(emulated)
    build_sim_device("heat", emulated.devices["heat"], ctx)
    assert SIMULATED_CHIP in ctx.shared and "streamer" not in ctx.shared


@pytest.mark.parametrize(
    ("simulator", "role", "key"),
    [
        ({"fwhm": 0.3}, "heaters", "simulator.fwhm"),
        ({"fwhm_nm": -1}, "heaters", "simulator.fwhm_nm"),
        ({"crosstalk": {"horizontal": "lots"}}, "heaters", "simulator.crosstalk.horizontal"),
        ({}, "lasers", "devices.heat.options.role"),
        ({}, "detectors", "devices.heat.kind"),
    ],
)
def test_sim_driver_errors_name_the_key(simulator: dict[str, Any], role: str, key: str) -> None:
    spec = bench(simulator, role)
    with pytest.raises(BenchFileError) as error:
        build_sim_device("heat", spec.devices["heat"], context(spec))
    assert error.value.key == key and error.value.path == "bench.yaml"


def test_a_source_history_is_bounded_and_keeps_the_latest_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service's simulated bench runs job after job: its write history must not grow without end."""
    monkeypatch.setattr(instruments, "HISTORY_LIMIT", 10)
    heaters = SimVoltageSource(make_chip(), "heaters")
    for step in range(23):
        heaters.write_voltages(np.array([0]), np.array([0.01 * step]))
    assert 5 <= len(heaters.history) <= 10
    assert heaters.history[-1].volts[0] == pytest.approx(0.22)
    assert [w.volts[0] for w in heaters.history] == pytest.approx(
        [0.01 * s for s in range(23 - len(heaters.history), 23)]
    )
