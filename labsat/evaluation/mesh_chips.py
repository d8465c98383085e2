"""Which meshes an MZI model meets after training: fresh devices, fresh modelled meshes, its design model.

A mesh model is deployed by phase: its trained phase shifts become heater volts through the *design*
heater model (nominal ``P_π`` and resistance), as on a replacement chip nobody calibrated. So:

* a **fresh device** is a whole simulated bench with another fabrication seed (the bench's design, its
  ``simulator:`` section), driven through its guarded instruments with readout noise;
* a **fresh mesh** is the modelled physics of such a chip with ``σ_ph = σ_bs = σ`` (no instruments, no
  noise): the SAT paper's transfer diagonal;
* the **design model** (50:50 couplers, no phase errors) is where a mesh's curvature is taken, in rad⁻²
  (phase space): the one model every mesh model shares, whichever twin it was trained with.

The meshes are drawn chip by chip: the mesh layer caches per-chip coupler products and phase offsets for its
speed, so a batch of meshes is a loop here, unlike a bank's population (:mod:`labsat.evaluation.chips`).
"""

from __future__ import annotations

import torch

from labsat.bench import open_bench
from labsat.benchfile import BenchFile
from labsat.datasets import Split
from labsat.errors import LabsatError
from labsat.evaluation.photonic import ChipDraw, LayerModel
from labsat.evaluation.sweeps import SweepSpec
from labsat.physics.mzi import MZIChipParams, mesh_layer, volts_for_phase
from labsat.simulators.mzi import MZISimConfig, chip_params
from labsat.specs.mzi import MZISystemSpec
from labsat.systems.kind import system_of
from labsat.systems.mzi import MZIMeshSystem
from labsat.training.evaluate import accuracy
from labsat.training.mzi import mesh_physical_layer
from labsat.training.network import PhotonicNet
from labsat.training.runners import device_runner

MESH_TRANSFER = SweepSpec(
    "mesh_transfer", "σ_ph = σ_bs of a fresh mesh", "", (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), min_seeds=5
)
"""The SAT paper's transfer grid (its diagonal): a model's phases on fresh meshes, modelled (no readout errors)."""
FRESH_DEVICE_SEED_STEP = 1000
"""Fresh device ``k`` (1, 2, …) is the bench with seed ``bench seed + k · 1000``: far from any seed a sweep's
cells or a lab's bench files are likely to use for device A itself."""
COUPLER_CHIP_SEED_OFFSET = 7
"""The chip with larger coupler errors is the bench with seed ``bench seed + 7`` (one chip, σ_bs varied)."""


def fresh_device_seeds(spec: BenchFile, count: int) -> list[int]:
    """The bench seeds of ``count`` fresh devices of ``spec``'s design."""
    return [spec.seed + FRESH_DEVICE_SEED_STEP * k for k in range(1, count + 1)]


def accuracy_on_device(
    spec: BenchFile, net: PhotonicNet, test: Split, seed: int, sigma_bs: float | None = None
) -> float:
    """Accuracy of ``net`` on the simulated device of bench seed ``seed`` (coupler error σ_bs if given).

    The device is opened from ``spec`` (so through its guard and limits), and its phases are set through the
    design heater model: no calibration of the new chip.
    """
    update: dict[str, object] = {"seed": seed}
    if sigma_bs is not None:
        update["simulator"] = {**spec.simulator, "sigma_bs": sigma_bs}
    with open_bench(spec.model_copy(update=update), torch_device=torch.device("cpu")) as bench:
        system = system_of(bench, MZIMeshSystem)
        physical = mesh_physical_layer(system, system.nominal_twin(), net.sizes[-1])
        return accuracy(net, test, device_runner(physical))


def fresh_mesh(spec: BenchFile) -> ChipDraw:
    """``(σ, seed) ->`` the layer model of a fresh mesh with σ_ph = σ_bs = σ, driven through the design's heaters."""
    config = MZISimConfig.model_validate(spec.simulator)
    system = spec.system
    if not isinstance(system, MZISystemSpec):
        raise LabsatError(f"bench {spec.name!r} is a {system.label}, not an MZI mesh: it has no fresh meshes")
    design = MZIChipParams.nominal(system.modes, system.p_pi_mw, system.heater_resistance_ohm)

    def draw(sigma: float, seed: int) -> LayerModel:
        chip = chip_params(config.model_copy(update={"sigma_ph": sigma, "sigma_bs": sigma}), design.modes, seed)
        chip = chip.to(dtype=torch.float32)
        return lambda x, shifts, _dt: mesh_layer(chip, x, volts_for_phase(design, shifts))

    return draw


def design_layer(system: MZIMeshSystem, outputs: int) -> LayerModel:
    """The design mesh as a layer model over phase shifts, read out on its first ``outputs`` modes."""
    design = mesh_physical_layer(system, system.nominal_twin(), outputs).twin_layer
    return lambda x, shifts, _dt: design(x, shifts)
