"""PNG plots of a calibration, written under the record's artifact folder.

- ``rings.png``: every ring's heater sweep with its Lorentzian fit (flagged rings shaded);
- ``crosstalk.png``: the thermal crosstalk kernel the twin uses;
- ``parity.png``: the twin against the device on the held-out validation points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labsat import plots
from labsat.calibration.fitting import lorentzian
from labsat.calibration.record import CalibrationRecord
from labsat.store import Store


def ring_sweeps_figure(record: CalibrationRecord, store: Store, folder: Path) -> Path | None:
    rings, detectors = record.rings, record.detectors
    if rings is None or detectors is None or not rings.done:
        return None
    rows, cols = record.rows, record.cols
    power = torch.linspace(*rings.power_mw, rings.points, dtype=torch.float64)
    measured = np.full((rows, cols, rings.points), np.nan)
    fitted = np.full_like(measured, np.nan)
    notes = [["" for _ in range(cols)] for _ in range(rows)]
    raw = store.artifact_dir("calibrations", rings.record_id) / "rings"  # the record that swept (maybe an earlier one)
    for step in rings.done:
        data = torch.load(raw / f"group-{step}.pt")
        for i, (r, c) in enumerate(data["rings"]):
            measured[r, c] = data["volts"][:, i].numpy()
    for r in range(rows):
        for c in range(cols):
            fit = rings.fits[r][c]
            if fit is None:
                notes[r][c] = f"({r},{c}) flagged"
                continue
            shape = lorentzian(power, torch.tensor([fit.resonance_mw]), torch.tensor([fit.fwhm_mw]))[0]
            baseline = detectors.dark_volts[r] - fit.gain_volts
            fitted[r, c] = (baseline + 2 * fit.gain_volts * fit.depth * shape).numpy()
            notes[r][c] = f"({r},{c}) {fit.resonance_mw:.2f} mW"
    figure = plots.curve_grid(
        power.numpy(),
        measured,
        fitted,
        notes,
        title=f"Heater sweeps of bench {record.bench}, calibration {record.id} (as swept: {len(rings.groups)} steps)",
        xlabel="heater power (mW at the bench file's resistance)",
        ylabel="detector (V)",
    )
    return plots.save(figure, folder / "rings.png")


def crosstalk_figure(record: CalibrationRecord, folder: Path) -> Path | None:
    if record.parameters is None:
        return None
    kernel = np.asarray(record.parameters.crosstalk_kernel)
    reach_r, reach_c = kernel.shape[0] // 2, kernel.shape[1] // 2
    kernel[reach_r, reach_c] = np.nan  # the ring's own heater (1 by definition) would wash out the colours
    figure = plots.heatmap(
        kernel,
        title=f"Thermal crosstalk, calibration {record.id}\n(heater at the offset → ring at the centre)",
        row_labels=[f"row {d:+d}" for d in range(-reach_r, reach_r + 1)],
        col_labels=[f"col {d:+d}" for d in range(-reach_c, reach_c + 1)],
        colorbar="fraction of the heater's power reaching the ring",
    )
    return plots.save(figure, folder / "crosstalk.png")


def parity_figure(record: CalibrationRecord, folder: Path) -> Path | None:
    path = folder / "validation.pt"
    if record.validation is None or not path.exists():
        return None
    data = torch.load(path)
    figure = plots.parity(
        data["twin"].numpy(),
        data["device"].numpy(),
        title=f"Twin vs device on {record.validation.samples} held-out points",
        label="output (logical units)",
    )
    return plots.save(figure, folder / "parity.png")


def write_figures(record: CalibrationRecord, store: Store) -> list[Path]:
    """Every plot the record's data allows, in its artifact folder; returns the files written."""
    folder = store.artifact_dir("calibrations", record.id)
    made = (
        ring_sweeps_figure(record, store, folder),
        crosstalk_figure(record, folder),
        parity_figure(record, folder),
    )
    return [path for path in made if path is not None]
