"""Input-modulator transfer curves: drive one channel from 0 to its limit, fit ``sin²(πV/2Vπ)``.

The limit is the guard's: the drives are its nearest allowed points, so a power cap or the bench budget ends
the sweep where the guard would, and the fit takes the volts really sent.

The heaters sit at their safe values, so each ring passes its channel at rest (mostly off resonance,
weight near −1) and every detector row sees the channel's power. All rows share the channel's Vπ;
each row gets its own amplitude and offset, so a row whose ring happens to sit near resonance (little
net signal) simply weighs little in the fit. Rows whose readings reach their detector's limit are left
out of the fit.
"""

from __future__ import annotations

import torch

from labsat.calibration.fitting import fit_sin2
from labsat.calibration.record import Flag, ModulatorsResult
from labsat.calibration.rings import INSIDE, clipped
from labsat.calibration.session import Run

SIGNAL_NOISE = 10.0
"""A channel whose largest detector swing stays below this many noise sigmas is reported as dark."""
V_PI_SEARCH = (0.25, 4.0)
"""Vπ is searched between these multiples of the drive limit."""


def run(run: Run) -> None:
    system, record, options = run.system, run.record, run.options
    assert record.detectors is not None
    high = min(lim.voltage[1] for lim in system.modulators.limits)
    low = max(0.0, *(lim.voltage[0] for lim in system.modulators.limits))
    if record.modulators is None:
        missing: list[float | None] = [None] * system.cols
        record.modulators = ModulatorsResult(
            record_id=record.id, drive_volts=(low, high * INSIDE), v_pi=list(missing), rms_volts=list(missing)
        )
    result = record.modulators
    volts = torch.linspace(*result.drive_volts, options.modulator_points, dtype=torch.float64)
    noise = torch.tensor(record.detectors.noise_volts, dtype=torch.float64)
    rails = record.detectors.rail_volts
    rest = torch.as_tensor(system.heaters.safe_values, dtype=torch.float32).reshape(system.rows, system.cols)
    search = (V_PI_SEARCH[0] * high, V_PI_SEARCH[1] * high)
    for c in run.steps("modulators", result, system.cols):
        system.program(rest)
        planned = torch.zeros(len(volts), system.cols, dtype=torch.float32)
        planned[:, c] = volts.to(torch.float32)
        # The guard's nearest allowed drives: a power cap or the bench budget may end the sweep below the box.
        drives = torch.as_tensor(system.modulators.project_batch(planned))
        swept = drives[:, c].to(torch.float64)
        reach = float(swept.max())
        readings = system.measure_volts(drives).cpu().to(torch.float64)  # (N, rows)
        target = f"modulator {system.modulators.channel_names[c]}"
        usable = [r for r in range(system.rows) if not bool(clipped(readings[:, r], rails[r]).any())]
        if not usable:
            result.flags.append(
                Flag(
                    procedure="modulators",
                    target=target,
                    message="every detector row reaches its limit while this channel alone is driven (see "
                    "detectors); not fitted",
                )
            )
            continue
        swing = (readings[:, usable].max(0).values - readings[:, usable].min(0).values) / noise[usable]
        if float(swing.max()) < SIGNAL_NOISE:
            result.flags.append(
                Flag(
                    procedure="modulators",
                    target=target,
                    message=f"no detector changed while driving it over {low:g}–{reach:g} V: no light on this "
                    "channel (laser off, fibre, or a dead modulator); not fitted",
                )
            )
            continue
        fit = fit_sin2(swept.unsqueeze(0), readings[:, usable].T.unsqueeze(0), search)
        v_pi = float(fit.v_pi[0])
        result.rms_volts[c] = float(fit.rms[0])
        if not search[0] * 1.01 < v_pi < search[1] * 0.99:
            result.flags.append(
                Flag(
                    procedure="modulators",
                    target=target,
                    message=f"Vπ fit ran to the end of its search range ({v_pi:.3g} V): the curve is not sin²; "
                    "not used",
                )
            )
            continue
        result.v_pi[c] = v_pi
        if v_pi > reach:
            result.flags.append(
                Flag(
                    procedure="modulators",
                    target=target,
                    message=f"Vπ {v_pi:.3g} V is beyond the {reach:g} V drive limit: this channel never reaches "
                    "full power, and the guard refuses inputs that ask for more than the limit",
                )
            )
