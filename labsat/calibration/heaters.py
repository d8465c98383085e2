"""Heater resistance spread, fitted to whole weight maps measured at random heater settings.

A sweep sees a ring's response to its own heater only as ``Δλ/η`` against ``V²/R``, so the heater
resistances stay hidden from it, yet the crosstalk a ring receives from heater ``m`` is ``K·V_m²/R_m``:
with the few per cent of resistance spread of a real chip, every crosstalk term is off by that much,
which on a bank with every heater on is several per cent of a weight. Here all heaters take random
powers at once; each map is read with one channel lit at a time (every ring's weight, one sample per
channel), and the resistances (their ratios: the mean is the bench file's) and the kernel are fitted
through the same physics the twin uses, starting from the sweep and crosstalk results.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from labsat.calibration.parameters import SweepTable, derive_parameters, ring_response
from labsat.calibration.record import ChipParameters, Flag, HeatersResult
from labsat.calibration.rings import full_input_drive, heater_resistance, max_heater_power_mw, random_heater_maps
from labsat.calibration.session import Run
from labsat.physics.mrr import bank_weights
from labsat.twin import chip_params, wavelengths

MAPS_PER_STEP = 10
"""Heater maps measured between two saved checkpoints."""
SEED_OFFSET = 1
"""The fit's random maps use ``seed + 1``, so the validation (``seed``) never sees them."""
STEP = 1e-6
"""Finite-difference step of the Jacobian (log resistance ratios and kernel entries are both O(0.01–1))."""


def run(run: Run) -> None:
    system, record, options = run.system, run.record, run.options
    assert record.detectors is not None and record.modulators is not None and record.rings is not None
    if record.heaters is None:
        record.heaters = HeatersResult(record_id=record.id, maps=options.heater_maps)
    result = record.heaters
    nominal = heater_resistance(system)
    generator = torch.Generator().manual_seed(options.seed + SEED_OFFSET)
    maps = random_heater_maps(system, result.maps, nominal, max_heater_power_mw(system), generator)
    one_hot = torch.diag(full_input_drive(system, record.modulators)).to(torch.float32)
    folder = run.artifacts / "heaters"
    folder.mkdir(exist_ok=True)
    chunks = range(0, result.maps, MAPS_PER_STEP)
    for step in run.steps("heaters", result, len(chunks)):
        readings = []
        for heater_map in maps[chunks[step] : chunks[step] + MAPS_PER_STEP]:
            system.program(heater_map)
            readings.append(system.measure_volts(one_hot).cpu().T)  # (rows, channel lit)
        torch.save(torch.stack(readings), folder / f"maps-{step}.pt")
    volts = torch.cat([torch.load(folder / f"maps-{step}.pt") for step in range(len(chunks))]).to(torch.float64)
    fit(result, derive_parameters(record), SweepTable.of(record.rings), maps.to(torch.float64), volts)


def fit(
    result: HeatersResult,
    parameters: ChipParameters,
    sweeps: SweepTable,
    heater_volts: Tensor,
    detector_volts: Tensor,
    iterations: int = 30,
) -> None:
    """Fit resistance ratios and kernel to weight maps from ``parameters``; store them in ``result``.

    ``detector_volts`` ``(maps, rows, channel lit)`` were read at ``heater_volts`` ``(maps, rows, cols)``.
    Levenberg–Marquardt with a finite-difference Jacobian (float64): some 90 unknowns against thousands of
    weights, a handful of iterations where a first-order optimiser needs hundreds; one forward pass per
    unknown is far cheaper here than any autodiff Jacobian.
    """
    if not bool(sweeps.fitted.any()):
        result.flags.append(
            Flag(procedure="heaters", target="heaters", message="no ring could be fitted (see rings): nothing to fit")
        )
        result.resistance_ohm, result.kernel = parameters.heater_resistance_ohm, parameters.crosstalk_kernel
        return
    start = chip_params(parameters, dtype=torch.float64)
    gain = start.readout_volts_per_mw.unsqueeze(-1) * start.input_power_mw  # (rows, cols)
    measured = (detector_volts - start.readout_offset_v.unsqueeze(-1)) / gain  # ring weights (maps, rows, cols)
    mask = sweeps.fitted
    rings = mask.numel()
    kernel_start = start.crosstalk_kernel
    free = torch.ones(kernel_start.numel(), dtype=torch.bool)
    free[kernel_start.numel() // 2] = False  # the centre is 1 by definition
    free_entries = free.nonzero().squeeze(-1)

    def unpack(theta: Tensor) -> tuple[Tensor, Tensor]:
        log_ratio = theta[:rings].reshape(mask.shape)
        resistance = sweeps.nominal_resistance_ohm * (log_ratio - log_ratio.mean()).exp()
        step = torch.zeros(kernel_start.numel(), dtype=theta.dtype).index_put((free_entries,), theta[rings:])
        return resistance, kernel_start + step.reshape(kernel_start.shape)

    def residual(theta: Tensor) -> Tensor:
        resistance, kernel = unpack(theta)
        resonance, fwhm = ring_response(sweeps, kernel, resistance)
        rest_nm, fwhm_nm = wavelengths(resonance, fwhm, parameters.assumed_efficiency_nm_per_mw)
        params = replace(
            start, rest_resonance_nm=rest_nm, fwhm_nm=fwhm_nm, heater_resistance_ohm=resistance, crosstalk_kernel=kernel
        )
        return (bank_weights(params, heater_volts) - measured)[:, mask].reshape(-1)

    theta = torch.zeros(rings + len(free_entries), dtype=torch.float64)
    error = residual(theta)
    cost = error.square().sum()
    result.rms_before = float(error.square().mean().sqrt())
    damping = 1e-3
    for _ in range(iterations):
        jacobian = torch.stack([(residual(theta + step) - error) / STEP for step in STEP * torch.eye(len(theta))], 1)
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ error
        while True:
            regular = normal + damping * torch.diag(normal.diagonal() + 1e-12)
            trial = theta - torch.linalg.solve(regular, gradient)
            trial_error = residual(trial)
            trial_cost = trial_error.square().sum()
            if trial_cost < cost or damping > 1e8:
                break
            damping *= 10
        if not trial_cost < cost:
            break
        improvement = float((cost - trial_cost) / cost)
        theta, error, cost, damping = trial, trial_error, trial_cost, max(damping / 10, 1e-9)
        if improvement < 1e-6:
            break
    resistance, kernel = unpack(theta)
    result.rms_after = float(error.square().mean().sqrt())
    result.resistance_ohm = resistance.tolist()
    result.kernel = kernel.tolist()
