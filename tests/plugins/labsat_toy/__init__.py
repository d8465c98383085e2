"""A system kind from outside labsat, as a lab would publish one: this package plus one entry point.

``toy_mesh`` is a small MZI mesh bench that labsat knows nothing about: its own bench-file spec (a
``type`` labsat has never heard of, one key of its own), its own calibration and record (the outputs at
zero heater power, measured through the guarded System), trained through the design twin. Everything
else it takes from labsat's parts (the mesh System, the simulated chip, the mesh network and
evaluation), which is what composing a kind means. ``tests/test_system_kinds.py`` installs it for a
test by putting a ``dist-info`` with its entry point on ``sys.path``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from labsat.calibration.fit_runner import FitCalibration
from labsat.calibration.fitted import FitRecord, store_fit
from labsat.calibration.record import Cost, _Model
from labsat.evaluation.layer import LayerEvaluation
from labsat.simulators.plugin import MZI_CHIP
from labsat.specs.mzi import MZISystemSpec
from labsat.systems.kind import CalibrationSettings, Kind, system_of
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.mzi import mesh_network, mesh_physical_layer


class ToyMeshSpec(MZISystemSpec):
    """An MZI mesh's spec under a new type, with one key of its own."""

    type: Literal["toy_mesh"]  # type: ignore[assignment]
    dark_repeats: int = Field(2, ge=1, description="Readings averaged by the toy calibration.")

    @property
    def label(self) -> str:
        return f"{self.modes}-mode toy mesh"


class ToyOptions(_Model):
    repeats: int | None = Field(None, ge=1, description="Readings averaged (None: the spec's dark_repeats).")


class ToyRecord(FitRecord):
    """The toy calibration: each output's reading with all inputs on and every heater at zero."""

    PROCEDURE: ClassVar[str] = "zero_power"
    LABEL: ClassVar[str] = "toy"

    kind: Literal["toy_mesh"] = "toy_mesh"
    version: int = 1
    options: ToyOptions = Field(default_factory=ToyOptions)
    outputs: list[float]

    def figures(self) -> dict[str, Any]:
        return {"mean_output": sum(self.outputs) / len(self.outputs)}

    def fitted(self) -> Any:
        return {"outputs": self.outputs}

    @classmethod
    def fitted_fields(cls, calibration: Any) -> dict[str, Any]:
        outputs, cost = calibration
        return {"outputs": [float(value) for value in outputs], "cost": Cost().plus(cost)}


def calibrate_toy(bench: Any, store: Any, options: ToyOptions | None, progress: Any) -> ToyRecord:
    """Read every output at zero heater power with all inputs on, through the guarded System."""
    system = system_of(bench, MZIMeshSystem)
    options = options or ToyOptions()
    spec = bench.spec.system
    repeats = options.repeats or spec.dark_repeats

    def fit() -> tuple[list[float], Any]:
        before = system.stats.copy()
        system.program(torch.zeros(spec.modes * (spec.modes - 1), device=bench.torch_device))
        ones = torch.ones(repeats, spec.modes, device=bench.torch_device)
        outputs = system.measure(ones).mean(dim=0).tolist()
        return outputs, system.stats.since(before)

    return store_fit(bench, store, ToyRecord, options, fit)


class ToyTraining:
    disturbances: tuple[str, ...] = ()

    def network(self, bench: Any, config: Any, dataset: Any) -> Any:
        return mesh_network(config, system_of(bench, MZIMeshSystem).modes, dataset.n_classes)

    def layer(self, bench: Any, record: Any, outputs: int) -> Any:
        system = system_of(bench, MZIMeshSystem)
        return mesh_physical_layer(system, system.nominal_twin(), outputs)


SETTINGS = CalibrationSettings("toy", ToyOptions, "toy", "Toy mesh: how many readings are averaged")

KIND = Kind(
    type="toy_mesh",
    spec=ToyMeshSpec,
    system=MZIMeshSystem,
    calibration=FitCalibration(ToyRecord, "a toy mesh's zero-power reading", SETTINGS, calibrate_toy),
    training=ToyTraining(),
    evaluation=LayerEvaluation(),
    simulator=MZI_CHIP,
)
