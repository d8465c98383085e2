"""Detector dark offsets, noise, and where a detector clips.

Dark: every modulator at 0 (no light), repeated readings; the mean is the offset, the spread the read
noise that every later procedure compares its signals and residuals with.

Clipping: every modulator at full drive with the heaters at rest puts (nearly) the most light a row
can see on its detector. A reading pinned at the converter's rail has lost its noise: readings that
repeat exactly, where light adds noise rather than removing it, mean the row saturates. The row is
flagged (forward passes with many channels lit will clip there) and its rail recorded; the later
sweeps light one channel at a time and refuse any curve that reaches the rail.
"""

from __future__ import annotations

import torch

from labsat.calibration.record import DetectorsResult, Flag
from labsat.calibration.rings import allowed_drive
from labsat.calibration.session import Run

NOISE_FLOOR_VOLTS = 1e-6
"""Noise assumed where dark readings do not vary at all (noise below one converter step)."""


def run(run: Run) -> None:
    system, record, options = run.system, run.record, run.options
    if record.detectors is None:
        record.detectors = DetectorsResult(record_id=record.id)
    result = record.detectors
    rest = torch.as_tensor(system.heaters.safe_values, dtype=torch.float32).reshape(system.rows, system.cols)
    full = allowed_drive(system, system.readout.modulator_v_pi.cpu())
    for _ in run.steps("detectors", result, 1):
        system.program(rest)
        dark = system.measure_volts(torch.zeros(options.repeats, system.cols)).cpu().to(torch.float64)
        lit = system.measure_volts(full.expand(options.repeats, -1).clone()).cpu().to(torch.float64)
        result.dark_volts = dark.mean(0).tolist()
        result.noise_volts = dark.std(0).clamp_min(NOISE_FLOOR_VOLTS).tolist()
        result.full_input_volts = lit.mean(0).tolist()
        signal = (lit.mean(0) - dark.mean(0)).abs()
        pinned = (lit == lit[0]).all(0) & (signal > 0)
        result.rail_volts = [float(lit[0, r]) if bool(pinned[r]) else None for r in range(system.rows)]
        for r in result.saturated_rows:
            result.flags.append(
                Flag(
                    procedure="detectors",
                    target=f"detector row {r}",
                    message=f"saturates: with every channel at full input all {options.repeats} readings sit at "
                    f"{float(lit[0, r]):.4g} V with no noise (the converter's rail); lower the input power or the "
                    "TIA gain, or keep fewer channels lit",
                )
            )
