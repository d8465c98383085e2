"""``driver: qcodes``: any QCoDeS instrument class as a labsat device, every write through the guard.

QCoDeS instruments are driven by parameters (``gs200.voltage(1.5)``, ``k.source.voltage()``) and
methods; the bench file maps them to channels (see :mod:`labsat.drivers.bridge`). The instrument is made
as ``cls(name, address=..., **kwargs)`` (``address`` left out when the bench entry has none, as for the
simulated instruments QCoDeS ships) and named after the bench and the device. QCoDeS' own validators
stay in force behind the guard. Needs the extra: ``pip install 'labsat[qcodes]'``.
"""

from __future__ import annotations

from typing import Any

from labsat.benchfile import DeviceSpec
from labsat.registry import BenchContext

from .bridge import BridgeDetector, BridgeOptions, BridgeVoltageSource, Framework, build_bridge, resolve


class QcodesAccessor:
    """Parameters are called with a value to set and without to get; methods are called."""

    def set(self, instrument: Any, name: str, value: Any) -> None:
        _parameter(instrument, name).set(value)

    def get(self, instrument: Any, name: str) -> Any:
        return _parameter(instrument, name).get()

    def call(self, instrument: Any, name: str) -> None:
        resolve(instrument, name)()

    def identity(self, instrument: Any) -> str:
        idn = instrument.get_idn()
        return ", ".join(str(idn[key]) for key in ("vendor", "model", "serial", "firmware") if idn.get(key))

    def close(self, instrument: Any) -> None:
        instrument.close()


def _parameter(instrument: Any, name: str) -> Any:
    """The QCoDeS parameter at ``name``; anything else (a method, a plain attribute) is refused by name."""
    from qcodes.parameters import ParameterBase  # the optional extra: imported only when a bench uses it

    found = resolve(instrument, name)
    if not isinstance(found, ParameterBase):
        raise AttributeError(f"{type(instrument).__name__}.{name} is not a QCoDeS parameter")
    return found


def _construct(cls: type, name: str, spec: DeviceSpec, context: BenchContext, options: BridgeOptions) -> Any:
    address = {} if spec.address is None else {"address": spec.address}
    return cls(f"{context.bench.name}_{name}".replace("-", "_"), **address, **options.kwargs)


QCODES = Framework(
    "qcodes", "qcodes", ("qcodes.instrument_drivers", "qcodes_contrib_drivers.drivers"), QcodesAccessor(), _construct
)


def build(name: str, spec: DeviceSpec, context: BenchContext) -> BridgeVoltageSource | BridgeDetector:
    """Entry point ``qcodes``."""
    return build_bridge(name, spec, context, framework=QCODES)
