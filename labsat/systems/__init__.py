"""Systems turn device calls into layer operations (``forward(x, controls) -> y``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsat.systems.mrr import MRRBankSystem
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

System = MRRBankSystem | MZIMeshSystem

_SYSTEMS: dict[str, type[MRRBankSystem] | type[MZIMeshSystem]] = {"mrr_bank": MRRBankSystem, "mzi_mesh": MZIMeshSystem}
"""The System class for each ``system.type``; each takes the same devices by role."""


def build_system(bench: Bench) -> System:
    """The System a bench file's ``system:`` section describes, over the bench's guarded devices."""
    spec = bench.spec.system
    return _SYSTEMS[spec.type](
        spec=spec,  # type: ignore[arg-type]  # the table pairs each spec type with its System
        heaters=bench.source(spec.heaters),
        modulators=bench.source(spec.modulators),
        detectors=bench.detectors[spec.detectors],
        clock=bench.clock,
        torch_device=bench.torch_device,
        streamer=bench.streamer,
    )
