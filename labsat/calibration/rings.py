"""Per-ring heater sweeps, fitted with the Lorentzian resonance model.

With one input channel lit, detector row ``r`` sees only ring ``(r, c)`` of that channel, so all the
rings of a column can be swept at once, each read by its own detector: one heater map and one sample
per sweep point serve ``rows`` rings (``parallel_rows``), where sweeping one ring at a time needs
``rows`` times as many. Columns beyond each other's thermal reach can share the heater maps too
(``parallel_columns``), each read with its own channel lit, which divides the heater maps again.

The price is that rings swept together heat each other; since they all follow the same power
sequence, that only stretches the power axis of ring ``n`` by ``1 + s_n`` (``s_n`` the kernel weight of
its swept neighbours), which :mod:`labsat.calibration.parameters` removes once the crosstalk kernel is
known. This module stores the sweeps as seen, and the groups they were swept in.

Powers are in mW at the bench file's heater resistance; the guard sees the matching voltages and ramps
every move larger than its step limit.

A ring whose peak is not inside the sweep, whose contrast is lost in the noise, whose detector clips or
whose data a Lorentzian does not describe is flagged with the reason and left unfitted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from labsat.calibration.fitting import PeakFit, fit_peaks, lorentzian
from labsat.calibration.record import Flag, ModulatorsResult, RingFit, RingsResult
from labsat.calibration.session import Run
from labsat.errors import LabsatError
from labsat.systems.mrr import MRRBankSystem

Ring = tuple[int, int]

CONTRAST_NOISE = 10.0
"""A peak must rise this many noise sigmas above the off-resonance level to count as a resonance."""
RESIDUAL_NOISE = 4.0
"""A fit whose residual exceeds this many noise sigmas (plus 1 % of the peak) is not a Lorentzian."""
STUCK_SAMPLES = 3
"""This many readings exactly at the top of a sweep mean the detector clipped (a rail nobody recorded)."""
INSIDE = 1 - 1e-6
"""Factor that keeps a value at a limit inside it after float32 rounding (the System sends float32)."""


def ring_groups(
    rows: int, cols: int, *, parallel_rows: bool, column_spacing: int = 0, max_columns: int = 1
) -> list[list[Ring]]:
    """Rings swept together: one at a time, a whole column (one ring per detector row), or several columns.

    With ``column_spacing`` > 0, columns that far apart (beyond each other's thermal reach) share a step,
    at most ``max_columns`` of them: one heater map then serves them all, read with one sample per lit
    channel. Every ring of a step follows the same power sequence.
    """
    if not parallel_rows:
        return [[(r, c)] for c in range(cols) for r in range(rows)]
    spacing = column_spacing if column_spacing > 0 else cols
    together = max(max_columns, 1)
    column_sets = [list(range(first, cols, spacing)) for first in range(min(spacing, cols))]
    steps = [columns[i : i + together] for columns in column_sets for i in range(0, len(columns), together)]
    return [[(r, c) for c in columns for r in range(rows)] for columns in steps]


def mutual_heating(kernel: Tensor, groups: Sequence[Sequence[Ring]], resistance_ohm: Tensor) -> Tensor:
    """``s`` ``(rows, cols)``: the heat each ring gets from the rings swept with it, as a fraction of its own.

    Rings of a group share one voltage, so ring ``n`` receives ``K[m − n]·V²/R_m`` from ring ``m`` against
    its own ``V²/R_n``: ``s_n = Σ_m K[m − n]·R_n/R_m``. Differentiable in the kernel and the resistances;
    rings in no group get 0.
    """
    rows, cols = resistance_ohm.shape
    frozen = tuple(tuple(group) for group in groups)
    target, source, kernel_rows, kernel_cols = _heating_pairs(frozen, tuple(kernel.shape), cols)
    flat = resistance_ohm.reshape(-1)
    share = kernel[kernel_rows, kernel_cols] * flat[target] / flat[source]
    return torch.zeros(rows * cols, dtype=share.dtype).index_add(0, target, share).reshape(rows, cols)


@functools.cache
def _heating_pairs(
    groups: tuple[tuple[Ring, ...], ...], kernel_shape: tuple[int, ...], cols: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat (target ring, source ring, kernel row, kernel column) of every in-reach pair within a group."""
    kh, kw = kernel_shape
    pairs = [
        (rn * cols + cn, rm * cols + cm, rm - rn + kh // 2, cm - cn + kw // 2)
        for group in groups
        for rn, cn in group
        for rm, cm in group
        if (rm, cm) != (rn, cn) and abs(rm - rn) <= kh // 2 and abs(cm - cn) <= kw // 2
    ]
    table = torch.tensor(pairs, dtype=torch.long).reshape(-1, 4)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def heater_resistance(system: MRRBankSystem) -> Tensor:
    """Per-ring heater resistance ``(rows, cols)`` from the bench file's heater limits."""
    values = [lim.resistance_ohm for lim in system.heaters.limits]
    if any(value is None for value in values):
        raise LabsatError(
            f"{system.heaters.name}: heater sweeps are in heater power, which needs resistance_ohm in every "
            "heater channel's limits"
        )
    return torch.tensor(values, dtype=torch.float64).reshape(system.rows, system.cols)


def max_heater_power_mw(system: MRRBankSystem) -> float:
    """The largest power every heater may take alone: the guard's voltage, current and power rules together."""
    return float(system.heaters.rules.power_cap_mw().min()) * INSIDE


def heater_volts(power_mw: Tensor, resistance_ohm: Tensor) -> Tensor:
    """Voltage that dissipates ``power_mw`` in a heater of ``resistance_ohm``."""
    return (power_mw.clamp_min(0) * resistance_ohm / 1e3).sqrt()


def random_heater_maps(
    system: MRRBankSystem, count: int, resistance_ohm: Tensor, top_mw: float, generator: torch.Generator
) -> Tensor:
    """``count`` float32 heater maps (volts) with powers uniform in ``[0, top]``, each moved to the nearest map
    the guard accepts (bench budget, neighbour rule: :meth:`~labsat.guard.GuardedVoltageSource.project_batch`).

    Uniform in power rather than volts: resonances are evenly spread in power, so every part of each
    ring's response (peak, flanks, tails) is visited.
    """
    power = torch.rand(count, *resistance_ohm.shape, generator=generator, dtype=torch.float64) * top_mw
    volts = heater_volts(power, resistance_ohm).to(torch.float32)
    allowed = system.heaters.project_batch(volts.reshape(count, -1))
    assert isinstance(allowed, Tensor)
    return allowed.reshape(volts.shape)


def sweep_plan(
    system: MRRBankSystem, resistance_ohm: Tensor, top_mw: float, groups_of: Callable[[int], list[list[Ring]]]
) -> tuple[list[list[Ring]], float]:
    """The ring groups (``groups_of(max_columns)``) and top power of a sweep the guard allows at every point.

    The most columns whose rings may sit at ``top_mw`` together (the bench budget decides), and where not even
    one column may (the neighbour rule: a ring hot beside cold ones), the highest top power one column allows.
    The allowed set is convex and holds 0 V, so a group allowed at its top is allowed at every lower power.
    """

    def allowed(groups: list[list[Ring]], top: float) -> bool:
        maps = torch.zeros(len(groups), system.rows, system.cols, dtype=torch.float64)
        for k, group in enumerate(groups):
            for r, c in group:
                maps[k, r, c] = heater_volts(torch.tensor(top, dtype=torch.float64), resistance_ohm[r, c])
        return bool(system.heaters.allows(maps.reshape(len(groups), -1).to(torch.float32)).all())

    for max_columns in range(system.cols, 0, -1):
        groups = groups_of(max_columns)
        if allowed(groups, top_mw):
            return groups, top_mw
    low, high = 0.0, top_mw
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if allowed(groups, middle) else (low, middle)
    if low <= 0.0:
        raise LabsatError(f"{system.heaters.name}: the guard allows no heater sweep at all (see its limits)")
    return groups, low


def full_input_drive(system: MRRBankSystem, modulators: ModulatorsResult) -> Tensor:
    """Modulator drive ``(cols,)`` for full input power: the fitted Vπ, moved inside what the guard allows."""
    nominal = system.readout.modulator_v_pi.detach().cpu().to(torch.float64)
    v_pi = torch.tensor([nominal[c] if v is None else v for c, v in enumerate(modulators.v_pi)], dtype=torch.float32)
    return allowed_drive(system, v_pi).to(torch.float64)


def allowed_drive(system: MRRBankSystem, volts: Tensor) -> Tensor:
    """The nearest float32 modulator drive ``(cols,)`` to ``volts`` that the guard accepts."""
    projected = system.modulators.project(volts.to(torch.float32))
    assert isinstance(projected, Tensor)
    return projected


def sweep(
    system: MRRBankSystem,
    group: Sequence[Ring],
    power_mw: Tensor,
    resistance_ohm: Tensor,
    drive: Tensor,
    background_volts: Tensor | None = None,
) -> Tensor:
    """Detector volts ``(N, len(group))``: each ring of ``group`` on its own detector, at each power.

    Every other heater stays at ``background_volts`` (default 0). One sample per lit channel of the
    group and per point; each ring is read on its row while only its own channel is lit.
    """
    channels = sorted({c for _, c in group})
    slot = {c: i for i, c in enumerate(channels)}
    drives = torch.zeros(len(channels), system.cols, dtype=torch.float64)
    for c in channels:
        drives[slot[c], c] = drive[c]
    base = torch.zeros(system.rows, system.cols, dtype=torch.float64)
    if background_volts is not None:
        base = background_volts.to(torch.float64).clone()
    rows = torch.tensor([r for r, _ in group])
    cols = torch.tensor([c for _, c in group])
    readings = []
    for power in power_mw:
        heater_map = base.clone()
        heater_map[rows, cols] = heater_volts(power, resistance_ohm[rows, cols])
        system.program(heater_map.to(torch.float32))
        measured = system.measure_volts(drives.to(torch.float32)).cpu().to(torch.float64)
        readings.append(measured[[slot[c] for c in cols.tolist()], rows])
    return torch.stack(readings)


def clipped(readings: Tensor, rail_volts: float | None) -> Tensor:
    """Which readings reached a detector rail recorded by the detectors procedure (none if it recorded none)."""
    if rail_volts is None:
        return torch.zeros_like(readings, dtype=torch.bool)
    return readings.abs() >= abs(rail_volts) * (1 - 1e-3)


def fit_sweeps(
    power_mw: Tensor, readings: Tensor, noise_volts: Tensor, rails: Sequence[float | None]
) -> tuple[PeakFit, list[str | None]]:
    """Lorentzian fits of sweeps ``(N, n)``, and for each ring why it must not be used (None if it may).

    ``noise_volts`` and ``rails`` are those of each ring's detector row.
    """
    fit = fit_peaks(power_mw, readings.T)
    step = float(power_mw[1] - power_mw[0])
    low, high = float(power_mw[0]), float(power_mw[-1])
    reasons: list[str | None] = []
    for i in range(readings.shape[1]):
        curve = readings[:, i]
        noise = float(noise_volts[i])
        contrast = float(curve.max() - curve.median())
        at_rail = int(clipped(curve, rails[i]).sum())
        stuck = int((curve == curve.max()).sum())
        center, width, amplitude = float(fit.center[i]), float(fit.fwhm[i]), float(fit.amplitude[i])
        if at_rail:
            reason = (
                f"{at_rail} of {len(curve)} readings sit at the detector's limit ({rails[i]:.4g} V): the detector "
                "saturates even with one channel lit (lower the input power or the TIA gain); not fitted"
            )
        elif stuck >= STUCK_SAMPLES and contrast > CONTRAST_NOISE * noise:
            reason = (
                f"{stuck} readings stuck at {float(curve.max()):.4g} V: the detector saturates at this ring's "
                "peak (lower the input power or the TIA gain); not fitted"
            )
        elif contrast <= CONTRAST_NOISE * noise:
            reason = (
                f"no resonance visible in the heater sweep {low:.3g}–{high:.3g} mW (peak {1e3 * contrast:.3g} mV "
                f"above the off-resonance level, noise {1e3 * noise:.2g} mV): the resonance lies outside the "
                "heater's tuning range or the ring is broken; not fitted"
            )
        elif int(curve.argmax()) in (0, len(curve) - 1) or not low + step <= center <= high - step:
            reason = (
                f"the resonance peak is not inside the heater sweep {low:.3g}–{high:.3g} mW (only a tail is "
                f"visible, fitted centre {center:.3g} mW); not fitted"
            )
        elif width < 2 * step:
            reason = (
                f"the resonance ({width:.3g} mW wide) is narrower than two sweep steps ({step:.3g} mW): "
                "raise sweep_points; not fitted"
            )
        elif float(fit.rms[i]) > RESIDUAL_NOISE * noise + 0.01 * abs(amplitude):
            reason = (
                f"fit residual {1e3 * float(fit.rms[i]):.3g} mV is far above the noise ({1e3 * noise:.2g} mV): "
                "the sweep is not one Lorentzian (a second resonance, clipping or drift); not used"
            )
        else:
            reason = None
        reasons.append(reason)
    return fit, reasons


def sweep_measurements(
    group: Sequence[Ring], power_mw: Tensor, readings: Tensor, fit: PeakFit, reasons: Sequence[str | None]
) -> list[dict[str, Any]]:
    """Each ring of a swept group as a live view draws it: the sweep, the fitted Lorentzian at the same powers
    (None where the ring was refused, with the reason) and the fit's figures."""
    curves = fit.baseline.unsqueeze(-1) + fit.amplitude.unsqueeze(-1) * lorentzian(power_mw, fit.center, fit.fwhm)
    power = [round(float(p), 5) for p in power_mw]
    return [
        {
            "ring": [r, c],
            "power_mw": power,
            "volts": [float(f"{float(v):.6g}") for v in readings[:, i]],
            "fit_volts": None if reasons[i] else [float(f"{float(v):.6g}") for v in curves[i]],
            "resonance_mw": float(fit.center[i]),
            "fwhm_mw": float(fit.fwhm[i]),
            "rms_volts": float(fit.rms[i]),
            "flag": reasons[i],
        }
        for i, (r, c) in enumerate(group)
    ]


def run(run: Run) -> None:
    """Sweep every ring's heater over its whole allowed power range and fit its resonance."""
    system, record, options = run.system, run.record, run.options
    assert record.detectors is not None and record.modulators is not None
    resistance = heater_resistance(system)
    top = max_heater_power_mw(system)
    if record.rings is None:
        groups, top = sweep_plan(
            system,
            resistance,
            top,
            lambda max_columns: ring_groups(
                system.rows,
                system.cols,
                parallel_rows=options.parallel_rows,
                column_spacing=options.kernel_size // 2 + 1 if options.parallel_columns else 0,
                max_columns=max_columns,
            ),
        )
        record.rings = RingsResult(
            record_id=record.id,
            groups=groups,
            power_mw=(0.0, top),
            points=options.sweep_points,
            resistance_ohm=resistance.tolist(),
            fits=[[None] * system.cols for _ in range(system.rows)],
        )
    result = record.rings
    groups = result.groups
    power = torch.linspace(*result.power_mw, result.points, dtype=torch.float64)
    drive = full_input_drive(system, record.modulators)
    dark = torch.tensor(record.detectors.dark_volts, dtype=torch.float64)
    noise = torch.tensor(record.detectors.noise_volts, dtype=torch.float64)
    rails = record.detectors.rail_volts
    folder = run.artifacts / "rings"
    folder.mkdir(exist_ok=True)
    for step in run.steps("rings", result, len(groups)):
        group = groups[step]
        readings = sweep(system, group, power, resistance, drive)
        torch.save({"rings": group, "power_mw": power, "volts": readings}, folder / f"group-{step}.pt")
        rows = [r for r, _ in group]
        fit, reasons = fit_sweeps(power, readings, noise[rows], [rails[r] for r in rows])
        if run.observe is not None:  # the curves are built only for a watcher
            for measurement in sweep_measurements(group, power, readings, fit, reasons):
                run.observe("rings", measurement)
        for i, (r, c) in enumerate(group):
            reason = reasons[i]
            if reason is not None:
                result.flags.append(Flag(procedure="rings", target=f"ring ({r}, {c})", message=reason))
                continue
            gain = float(dark[r] - fit.baseline[i])
            result.fits[r][c] = RingFit(
                resonance_mw=float(fit.center[i]),
                fwhm_mw=float(fit.fwhm[i]),
                depth=float(fit.amplitude[i]) / (2 * gain),
                gain_volts=gain,
                rms_volts=float(fit.rms[i]),
            )
