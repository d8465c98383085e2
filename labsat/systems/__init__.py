"""Systems turn device calls into layer operations (``forward(x, controls) -> y``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labsat.systems.d2nn import D2NNSystem
from labsat.systems.mrr import MRRBankSystem
from labsat.systems.mzi import MZIMeshSystem

if TYPE_CHECKING:
    from labsat.bench import Bench

System = MRRBankSystem | MZIMeshSystem | D2NNSystem

_SYSTEMS: dict[str, type[MRRBankSystem] | type[MZIMeshSystem] | type[D2NNSystem]] = {
    "mrr_bank": MRRBankSystem,
    "mzi_mesh": MZIMeshSystem,
    "d2nn": D2NNSystem,
}
"""The System class for each ``system.type``; each takes the devices its spec's roles name, by role."""


def build_system(bench: Bench) -> System:
    """The System a bench file's ``system:`` section describes, over the bench's guarded devices."""
    spec = bench.spec.system
    devices: dict[str, Any] = {}
    for need in spec.device_roles():
        device = bench.device(need.device)
        if need.index is None:
            devices[need.role] = device
        else:
            devices.setdefault(need.role, []).append(device)
    return _SYSTEMS[spec.type](
        spec=spec,  # type: ignore[arg-type]  # the table pairs each spec type with its System
        **devices,
        clock=bench.clock,
        torch_device=bench.torch_device,
        streamer=bench.streamer,
    )
