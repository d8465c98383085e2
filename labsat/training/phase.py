"""Networks of the systems trained in phase (an MZI mesh, a D2NN): what such a system affords, once for both.

A mesh and a D2NN are each *one* photonic layer whose controls are phases, whatever the layer's widths
(:attr:`~labsat.training.physical.PhysicalLayer.control_shape`), so ``labsat train`` fits the training
defaults (sized for an MRR bank, which tiles any width) to them in the same ways:

* there are no hidden layers: the training default's (``TrainConfig().hidden``) is dropped, and any other
  ``hidden`` is refused;
* SAT's adaptive scaling is off where it would measure from the default ``"peak"`` reference: a phase has
  no resonance to measure from, and scaling by ``|θ| + η`` from 0 rad would perturb 6.2 rad dozens of times
  more than −0.08 rad, the same phase; SAM's plain ball over the phases treats them alike;
* weight-space ``bp`` is refused: it trains a weight matrix, and neither layer is one.

What differs (a mesh's encoder onto its modes, a D2NN's image input) is
:func:`~labsat.training.mzi.mesh_network`'s and :func:`~labsat.training.diffractive.d2nn_network`'s.
"""

from __future__ import annotations

from labsat.errors import LabsatError
from labsat.training.config import TrainConfig

PHASE_METHODS = "bp-control, sat, pat, pat+sat, dat, nat, …"
"""The methods that train a phase layer, as a refusal of weight-space ``bp`` lists them."""


def phase_network(config: TrainConfig, *, layer: str, network: str) -> TrainConfig:
    """``config`` fitted to one phase layer (see the module doc).

    ``layer`` says what the layer computes ("a mesh's layer is |U(θ)x|²") and ``network`` what the network
    is ("a mesh network is an encoder and one pass through the mesh"), for the refusals.
    """
    if config.parsed.weight_space:
        raise LabsatError(
            f"method {config.method!r} trains weights x·wᵀ and deploys them afterwards; {layer}, not a weight "
            f"matrix: train it in phase ({PHASE_METHODS})"
        )
    if config.hidden not in ((), TrainConfig().hidden):
        raise LabsatError(f"{network}; it has no hidden layers (got hidden={list(config.hidden)})")
    adaptive = config.adaptive and config.theta_ref != "peak"
    return config.model_copy(update={"hidden": (), "adaptive": adaptive})
