"""Systems turn device calls into layer operations (``forward(x, controls) -> y``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsat.systems.mrr import MRRBankSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

System = MRRBankSystem


def build_system(bench: Bench) -> System:
    """The System a bench file's ``system:`` section describes, over the bench's guarded devices."""
    spec = bench.spec.system
    return MRRBankSystem(
        spec=spec,
        heaters=bench.source(spec.heaters),
        modulators=bench.source(spec.modulators),
        detectors=bench.detectors[spec.detectors],
        clock=bench.clock,
        torch_device=bench.torch_device,
        streamer=bench.streamer,
    )
