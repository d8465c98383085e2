"""Thermal crosstalk: hold one heater hot, sweep its neighbours again, and see their resonances move.

Heat from aggressor ``a`` at power ``P_a`` adds ``K[n − a]·P_a`` to ring ``n``, so ``n`` reaches its
channel at that much less of its own power. Each column the aggressor's heat reaches is swept again
over the ring procedure's powers, every ring of it at once (one per detector row), with the aggressor
held at its top power; the shift of every fitted centre against the ring sweep gives one kernel entry.

The rings swept together heat each other in both sweeps, which scales both centres by their own
``1 + s_n`` for their own group (see :mod:`labsat.calibration.rings`); ``s_n`` depends on the kernel
being fitted, so the kernel is solved by a short fixed-point iteration (``s`` is a few per cent, it
converges in a few rounds). Heat flows both ways alike, so the kernel's asymmetry is its fit quality.
Resistance spread between heaters (which scales each entry by ``R_n/R_a``) is left to the heaters
procedure, which refits the kernel with it.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from labsat.calibration.record import CrosstalkObservation, CrosstalkResult, Flag, RingsResult
from labsat.calibration.rings import (
    Ring,
    fit_sweeps,
    full_input_drive,
    heater_resistance,
    heater_volts,
    mutual_heating,
    sweep,
)
from labsat.calibration.session import Run
from labsat.errors import LabsatError
from labsat.systems.mrr import MRRBankSystem


def default_aggressors(rows: int, cols: int, kernel_size: int) -> list[Ring]:
    """One heater as near the bank's centre as lets the whole kernel fit around it."""
    reach = kernel_size // 2

    def central(size: int) -> int:
        return min(max(size // 2, reach), max(size - 1 - reach, 0))

    return [(central(rows), central(cols))]


def plan(aggressors: list[Ring], kernel_size: int, cols: int) -> list[tuple[Ring, int]]:
    """(aggressor, column) for every column an aggressor's heat reaches, in measurement order."""
    reach = kernel_size // 2
    return [((ra, ca), c) for ra, ca in aggressors for c in range(max(0, ca - reach), min(cols, ca + reach + 1))]


def solve_kernel(
    rings: RingsResult, observations: list[CrosstalkObservation], kernel_size: int, rounds: int = 20
) -> tuple[Tensor, list[tuple[int, int]]]:
    """The kernel (side ``kernel_size``) from the observed centre shifts, and the entries nobody observed.

    Unobserved entries take their point-mirrored partner's value where that was observed, else 0.
    """
    reach = kernel_size // 2
    rows, cols = len(rings.fits), len(rings.fits[0])
    equal = torch.ones(rows, cols, dtype=torch.float64)  # resistance spread is the heaters procedure's job
    kernel = torch.zeros(kernel_size, kernel_size, dtype=torch.float64)
    kernel[reach, reach] = 1.0
    unobserved: list[tuple[int, int]] = []
    for _ in range(rounds):
        main_heating = mutual_heating(kernel, rings.groups, equal)
        estimates: dict[tuple[int, int], list[float]] = defaultdict(list)
        for obs in observations:
            (ra, ca), c = obs.aggressor, obs.column
            heating = mutual_heating(kernel, [[(r, c) for r in obs.swept_rows]], equal)[:, c]
            for r in obs.swept_rows:
                shifted, ring = obs.centers_mw[r], rings.fits[r][c]
                i, j = reach - (r - ra), reach - (c - ca)
                if shifted is None or ring is None or not (0 <= i < kernel_size and 0 <= j < kernel_size):
                    continue
                alone = ring.resonance_mw * (1 + float(main_heating[r, c]))
                estimates[(i, j)].append((alone - shifted * (1 + float(heating[r]))) / obs.aggressor_mw)
        updated = torch.zeros_like(kernel)
        unobserved = []
        for i in range(kernel_size):
            for j in range(kernel_size):
                mirror = (kernel_size - 1 - i, kernel_size - 1 - j)
                values = estimates.get((i, j)) or estimates.get(mirror)
                if (i, j) == (reach, reach):
                    updated[i, j] = 1.0
                elif values:
                    updated[i, j] = sum(values) / len(values)
                else:
                    unobserved.append((i - reach, j - reach))
        converged = bool((updated - kernel).abs().max() < 1e-9)
        kernel = updated
        if converged:
            break
    return kernel, unobserved


def run(run: Run) -> None:
    """Step each aggressor heater to its top power and re-sweep the columns its heat reaches."""
    system, record, options = run.system, run.record, run.options
    rings = record.rings
    assert rings is not None and record.modulators is not None and record.detectors is not None
    size = options.kernel_size
    aggressors = options.aggressors or default_aggressors(system.rows, system.cols, size)
    for ra, ca in aggressors:
        if not (0 <= ra < system.rows and 0 <= ca < system.cols):
            raise LabsatError(f"aggressor ring ({ra}, {ca}) is outside the {system.rows}x{system.cols} bank")
    if record.crosstalk is None:
        record.crosstalk = CrosstalkResult(record_id=record.id, aggressors=aggressors, kernel_size=size)
    result = record.crosstalk
    steps = plan(result.aggressors, size, system.cols)
    resistance = heater_resistance(system)
    power = torch.linspace(*rings.power_mw, rings.points, dtype=torch.float64)
    top = rings.power_mw[1]
    drive = full_input_drive(system, record.modulators)
    noise = torch.tensor(record.detectors.noise_volts, dtype=torch.float64)
    _refuse_outside_the_guard(system, steps, resistance, top)
    for step in run.steps("crosstalk", result, len(steps)):
        (ra, ca), c = steps[step]
        group = [(r, c) for r in range(system.rows) if (r, c) != (ra, ca)]
        background = torch.zeros(system.rows, system.cols, dtype=torch.float64)
        background[ra, ca] = heater_volts(torch.tensor(top), resistance[ra, ca])
        readings = sweep(system, group, power, resistance, drive, background)
        rows = [r for r, _ in group]
        fit, reasons = fit_sweeps(power, readings, noise[rows], [record.detectors.rail_volts[r] for r in rows])
        centers: list[float | None] = [None] * system.rows
        for n, (r, _) in enumerate(group):
            if reasons[n] is None:
                centers[r] = float(fit.center[n])
        result.observations.append(
            CrosstalkObservation(aggressor=(ra, ca), aggressor_mw=top, column=c, swept_rows=rows, centers_mw=centers)
        )
    kernel, unobserved = solve_kernel(rings, result.observations, size)
    result.kernel = kernel.tolist()
    result.asymmetry = float(((kernel - kernel.flip(0, 1)) / 2).square().mean().sqrt())
    result.flags = [
        Flag(
            procedure="crosstalk",
            target=f"kernel offset ({di:+d}, {dj:+d})",
            message="no neighbour at this offset could be measured (edge of the bank, or its resonance left the "
            "sweep): 0 here, left to the heaters fit",
        )
        for di, dj in unobserved
    ]


def _refuse_outside_the_guard(
    system: MRRBankSystem, steps: list[tuple[Ring, int]], resistance: Tensor, top: float
) -> None:
    """Refuse, before any device time, a plan whose hottest point (aggressor and its swept column at ``top``)
    the guard would refuse mid-way; the allowed set is convex and holds 0 V, so every lower point is allowed."""
    hottest = torch.zeros(len(steps), system.rows, system.cols, dtype=torch.float64)
    for k, ((ra, ca), c) in enumerate(steps):
        hottest[k, :, c] = heater_volts(torch.tensor(top), resistance[:, c])
        hottest[k, ra, ca] = heater_volts(torch.tensor(top), resistance[ra, ca])
    allowed = system.heaters.allows(hottest.reshape(len(steps), -1).to(torch.float32))
    if not allowed.all():
        (ra, ca), c = steps[int((~allowed).nonzero()[0][0])]
        raise LabsatError(
            f"crosstalk: aggressor ({ra}, {ca}) at {top:.4g} mW with column {c} swept to it is outside what the "
            f"guard allows on {system.heaters.name} (bench budget or neighbour rule); nothing was measured"
        )
