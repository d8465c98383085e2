"""Calibrating a saturable-absorber bench: the absorber's transmission curve, measured and fitted.

The twin of ``a = SA(W x)`` needs the absorber's small-signal optical depth ``α0`` and saturation intensity
``I_sat``: the weights are what the SLM shows. So the fit shows the identity block on the weight SLM (output
``r`` sees input ``r`` alone), sweeps every input's amplitude over the input SLM's range together, and fits
``SA(x) = x·exp(−(α0/2)/(1 + x²/I_sat))`` to what the camera reads, over every output used and every
repeat. It is one finished fit (:mod:`labsat.calibration.fitted`), stored as an
:class:`AbsorberCalibrationRecord`; the figures compare the fitted and the nominal curve with the readings.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import torch
from pydantic import Field

from labsat.calibration.fitted import FitRecord, store_fit
from labsat.calibration.record import Cost, _Model
from labsat.calibration.session import Progress
from labsat.readout import QueryStats
from labsat.store import Store
from labsat.systems.kind import system_of
from labsat.systems.saturable import SaturableSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

PROCEDURE = "absorber"


class AbsorberCalibrationOptions(_Model):
    """How the absorber curve is measured and fitted."""

    levels: int = Field(33, ge=4, le=256, description="Input amplitudes measured, evenly over the input SLM's range.")
    repeats: int = Field(3, ge=1, le=100, description="Camera readings per amplitude.")
    steps: int = Field(400, ge=10, le=20000, description="Adam steps of the fit.")


class AbsorberFit(NamedTuple):
    """What a fit returns: the fitted absorber, its RMS misfit and the nominal one's, and what it cost."""

    alpha0: float
    i_sat: float
    fit_rms: float
    nominal_rms: float
    cost: QueryStats


def measure_curve(system: SaturableSystem, levels: int, repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input amplitudes ``(levels·repeats,)`` and the readings ``(levels·repeats, n)`` of the ``n`` outputs used."""
    used = min(system.inputs, system.outputs)
    identity = torch.zeros(used, used)
    identity.fill_diagonal_(1.0)
    system.program(identity)
    amplitudes = torch.linspace(0.0, system.spec.input_full_scale, levels).repeat(repeats)
    x = amplitudes.unsqueeze(1).expand(-1, used).to(system.torch_device)
    readings = system.measure(x)[:, :used].cpu().double()
    return amplitudes.double(), readings


def fit_curve(amplitudes: torch.Tensor, readings: torch.Tensor, alpha0: float, i_sat: float, steps: int) -> AbsorberFit:
    """``α0`` and ``I_sat`` fitted to the readings by Adam on their logarithms, from the nominal ones."""
    x = amplitudes.unsqueeze(1).expand_as(readings)

    def rms(depth: torch.Tensor | float, saturation: torch.Tensor | float) -> torch.Tensor:
        # transmit()'s formula with tensor parameters, so autograd reaches them
        curve = x * torch.exp(-(depth / 2) / (1 + x.square() / saturation))
        return (curve - readings).square().mean().sqrt()

    log_alpha = torch.tensor(math.log(max(alpha0, 1e-3)), dtype=torch.float64, requires_grad=True)
    log_isat = torch.tensor(math.log(i_sat), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([log_alpha, log_isat], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = rms(log_alpha.exp(), log_isat.exp())
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        fitted_alpha, fitted_isat = float(log_alpha.exp()), float(log_isat.exp())
        fitted_rms, nominal_rms = float(rms(fitted_alpha, fitted_isat)), float(rms(alpha0, i_sat))
    return AbsorberFit(fitted_alpha, fitted_isat, fitted_rms, nominal_rms, QueryStats())


def calibrate_absorber(
    system: SaturableSystem, levels: int = 33, repeats: int = 3, steps: int = 400, progress: Progress | None = None
) -> AbsorberFit:
    """Measure the absorber curve through ``system`` and fit it (see the module doc)."""
    before = system.stats.copy()
    if progress is not None:
        progress(PROCEDURE, 0, 2)
    amplitudes, readings = measure_curve(system, levels, repeats)
    if progress is not None:
        progress(PROCEDURE, 1, 2)
    fit = fit_curve(amplitudes, readings, system.spec.alpha0, system.spec.i_sat, steps)
    if progress is not None:
        progress(PROCEDURE, 2, 2)
    return fit._replace(cost=system.stats.since(before))


class AbsorberCalibrationRecord(FitRecord):
    """One calibration of a saturable-absorber bench: the fitted absorber, its figures, its cost."""

    PROCEDURE: ClassVar[str] = PROCEDURE
    LABEL: ClassVar[str] = "absorber"

    kind: Literal["saturable"] = "saturable"
    version: int = 1
    options: AbsorberCalibrationOptions = Field(default_factory=AbsorberCalibrationOptions)
    alpha0: float = Field(description="Fitted small-signal optical depth.")
    i_sat: float = Field(description="Fitted saturation intensity, in input amplitude² units.")
    fit_rms: float = Field(description="RMS misfit of the fitted curve to the readings (output field units).")
    nominal_rms: float = Field(description="RMS misfit of the bench file's nominal curve to the same readings.")

    def figures(self) -> dict[str, Any]:
        return {"alpha0": self.alpha0, "i_sat": self.i_sat, "fit_rms": self.fit_rms, "nominal_rms": self.nominal_rms}

    def fitted(self) -> Any:
        return {"alpha0": self.alpha0, "i_sat": self.i_sat}

    def twin_rms(self) -> dict[str, float | None]:
        return {"twin_weight_rms": None, "holdout_rms": self.fit_rms}

    @classmethod
    def fitted_fields(cls, calibration: AbsorberFit) -> dict[str, Any]:
        return {**calibration._asdict(), "cost": Cost().plus(calibration.cost)}


def calibrate_absorber_bench(
    bench: Bench, store: Store, options: AbsorberCalibrationOptions | None = None, progress: Progress | None = None
) -> AbsorberCalibrationRecord:
    """Fit ``bench``'s absorber (:func:`calibrate_absorber`); returns the record, saved in ``store``."""
    system = system_of(bench, SaturableSystem)
    options = options or AbsorberCalibrationOptions()
    fit = options.model_dump()
    return store_fit(
        bench, store, AbsorberCalibrationRecord, options, lambda: calibrate_absorber(system, **fit, progress=progress)
    )
