"""MZI mesh calibration: every MZI's phase against heater power, fitted to whole-mesh measurements.

A mesh's MZIs cannot be measured one at a time: each output mixes every MZI on its light cone, and only
intensities are seen. So the mesh is programmed to ``settings`` random phase patterns (heater volts
from the design's ``P_π``) and at each one the same set of input vectors is sent: the unit vectors
(each MZI column's power routing) and random superpositions (the interference, hence the phases).
The twin's own physics (:func:`~labsat.physics.mzi.mesh_layer`) is then fitted to all readings at once
by gradient descent, starting from the design: each MZI's phase offsets θ₀, φ₀ (fabrication phase
errors), its couplers' split errors and its ``P_π`` — the phase-vs-power line ``θ = θ₀ + π·P/P_π`` —
together with the readout around the mesh (each modulator's ``V_π`` relative to the nominal, each
detector's gain), which would otherwise be absorbed into the mesh parameters. A heater's resistance
only enters through ``P = V²/R`` and cannot be told apart from ``P_π`` optically; it stays at the
bench file's value and ``P_π`` absorbs its spread.

Starting at the design, the fit sits in the basin of the true chip for phase errors of a few tenths of a
radian (the device-A class). The fitted twin is judged on ``holdout`` further settings it never saw,
against the design twin on the same readings.

The readings are taken through the bench file's nominal readout, and the fitted readout is stored
relative to it; :meth:`MeshCalibration.apply` sets nominal × fitted, so applying a calibration twice, or
after another one, gives the same System.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from labsat.calibration.session import Progress
from labsat.physics.mzi import (
    TENSOR_FIELDS,
    MZIChipParams,
    MZIMeshModel,
    output_intensities,
    phase_shifts,
    unitary_at,
    volts_for_phase,
)
from labsat.readout import QueryStats, Readout
from labsat.systems.mzi import MZIMeshSystem

FITTED = ("theta_offset", "phi_offset", "split_in", "split_out", "p_pi_mw")
"""The mesh parameters calibration fits; the heater resistance stays nominal (see the module docstring)."""

FIT_REPORTS = 50
"""How often the fit reports its progress (phase ``"fit"``; measuring reports each setting as ``"measure"``):
often enough for a progress bar, or for a job's cancel to land, without slowing the fit."""


@dataclass(frozen=True)
class MeshReadings:
    """Readings at ``K`` heater settings: volts ``(K, 2M)``, inputs ``(B, N)`` (max 1 each), outputs ``(K, B, N)``."""

    volts: Tensor
    inputs: Tensor
    outputs: Tensor


@dataclass(frozen=True)
class MeshCalibration:
    """A fitted mesh, the readout around it, and how well it predicts readings it was not fitted to.

    RMS errors are in units of one input's full power (the System's output units).
    """

    params: MZIChipParams
    modulator_ratio: Tensor
    """Per mode, nominal over true modulator ``V_π``: a commanded amplitude ``a`` arrives as ``sin(r·asin a)``."""
    detector_gain: Tensor
    """Per mode, measured over true output intensity."""
    fit_rms: float
    holdout_rms: float
    design_holdout_rms: float
    cost: QueryStats

    def apply(self, system: MZIMeshSystem) -> MZIMeshModel:
        """Give ``system`` the fitted readout and return the fitted mesh as its twin.

        With the modulators' true ``V_π`` and the detectors' gains in the System's readout, what it
        returns is the mesh's own output, which is what the twin models. The readout is set from the
        nominal one (what the fit is relative to), never from whatever readout the System had.
        """
        nominal = system.nominal_readout()
        system.readout = Readout(
            volts_per_unit=nominal.volts_per_unit * self.detector_gain.to(nominal.volts_per_unit),
            dark_volts=nominal.dark_volts,
            modulator_v_pi=nominal.modulator_v_pi / self.modulator_ratio.to(nominal.modulator_v_pi),
        )
        return MZIMeshModel(self.params.to(system.torch_device, torch.float32))


def measure(
    system: MZIMeshSystem,
    settings: int,
    inputs: Tensor,
    generator: torch.Generator,
    report: Callable[[], None] | None = None,
) -> MeshReadings:
    """Program ``settings`` random phase patterns (through the design's heater model) and send ``inputs`` at each.

    ``report`` is called after each setting.
    """
    design = system.nominal_params().to("cpu", torch.float64)
    phases = 2 * math.pi * torch.rand(settings, 2 * design.mzis, generator=generator, dtype=torch.float64)
    allowed = system.heaters.project_batch(volts_for_phase(design, phases).float())  # what the guard accepts
    assert isinstance(allowed, Tensor)
    volts = allowed.double()
    outputs = []
    for setting in volts:
        outputs.append(system.forward(inputs, setting.float()).double().cpu())
        if report is not None:
            report()
    return MeshReadings(volts, inputs.double(), torch.stack(outputs))


def probe_inputs(modes: int, random: int, generator: torch.Generator) -> Tensor:
    """The unit vectors and ``random`` superpositions, each scaled to a largest amplitude of exactly 1."""
    superpositions = torch.rand(random, modes, generator=generator, dtype=torch.float64)
    superpositions = superpositions / superpositions.amax(dim=1, keepdim=True)
    return torch.cat([torch.eye(modes, dtype=torch.float64), superpositions]).float()


def predict(params: MZIChipParams, ratio: Tensor, gain: Tensor, readings: MeshReadings) -> Tensor:
    """What the System reads ``(K, B, N)`` for a mesh ``params`` with readout ``(ratio, gain)``."""
    amplitudes = torch.sin(ratio * torch.asin(readings.inputs.clamp(0, 1)))
    unitary = unitary_at(params, phase_shifts(params, readings.volts))
    return gain * output_intensities(unitary, amplitudes)


def rms(prediction: Tensor, readings: MeshReadings) -> float:
    return float((prediction - readings.outputs).square().mean().sqrt())


def calibrate_mesh(
    system: MZIMeshSystem,
    *,
    settings: int = 200,
    holdout: int = 40,
    random_inputs: int = 10,
    steps: int = 1500,
    lr: float = 0.02,
    seed: int = 0,
    progress: Progress | None = None,
) -> MeshCalibration:
    """Measure the mesh at ``settings + holdout`` random settings and fit its phases, couplers and ``P_π``.

    Costs ``settings + holdout`` heater programs and as many device forwards of ``N + random_inputs``
    samples; the fit itself runs on the bench PC (float64, Adam, ``steps`` full-batch steps). The
    System's readout is reset to the nominal one first (see the module docstring) and left there.
    """
    generator = torch.Generator().manual_seed(seed)
    system.readout = system.nominal_readout()
    before = system.stats.copy()
    inputs = probe_inputs(system.modes, random_inputs, generator)
    measured = 0

    def measured_one() -> None:
        nonlocal measured
        measured += 1
        if progress is not None:
            progress("measure", measured, settings + holdout)

    fit_data = measure(system, settings, inputs, generator, measured_one)
    check = measure(system, holdout, inputs, generator, measured_one)
    cost = system.stats.since(before)

    design = system.nominal_params().to("cpu", torch.float64)
    tensors = {name: t.clone().requires_grad_(name in FITTED) for name, t in design.tensors().items()}
    log_ratio = torch.zeros(system.modes, dtype=torch.float64, requires_grad=True)
    log_gain = torch.zeros(system.modes, dtype=torch.float64, requires_grad=True)
    trainable = [tensors[name] for name in FITTED] + [log_ratio, log_gain]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    def model() -> tuple[MZIChipParams, Tensor, Tensor]:
        return MZIChipParams(**tensors), log_ratio.exp(), log_gain.exp()

    every = max(1, steps // FIT_REPORTS)
    for step in range(steps):
        optimizer.zero_grad()
        params, ratio, gain = model()
        loss = (predict(params, ratio, gain, fit_data) - fit_data.outputs).square().mean()
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None and ((step + 1) % every == 0 or step + 1 == steps):
            progress("fit", step + 1, steps)

    with torch.no_grad():
        params, ratio, gain = model()
        fitted = replace(params, **{name: getattr(params, name).detach() for name in TENSOR_FIELDS})
        ones = torch.ones(system.modes, dtype=torch.float64)
        return MeshCalibration(
            params=fitted.to(system.torch_device, torch.float32),
            modulator_ratio=ratio.detach(),
            detector_gain=gain.detach(),
            fit_rms=rms(predict(fitted, ratio, gain, fit_data), fit_data),
            holdout_rms=rms(predict(fitted, ratio, gain, check), check),
            design_holdout_rms=rms(predict(design, ones, ones, check), check),
            cost=cost,
        )
