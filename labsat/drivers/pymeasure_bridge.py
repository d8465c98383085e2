"""``driver: pymeasure``: any PyMeasure instrument class as a labsat device, every write through the guard.

PyMeasure instruments are driven by properties (``smu.source_voltage = 1.5``) and methods
(``smu.enable_source()``); the bench file maps them to channels (see :mod:`labsat.drivers.bridge`). The
device's ``address`` is the instrument's adapter (a VISA resource name); ``options.kwargs`` go to its
constructor (``visa_library``, ``timeout``, ...). Needs the extra: ``pip install 'labsat[pymeasure]'``.
"""

from __future__ import annotations

from typing import Any

from labsat.benchfile import DeviceSpec
from labsat.errors import BenchFileError
from labsat.registry import BenchContext

from .bridge import BridgeDetector, BridgeOptions, BridgeVoltageSource, Framework, build_bridge, resolve


class PyMeasureAccessor:
    """Properties are assigned and read, methods called, ``id`` names the instrument."""

    def set(self, instrument: Any, name: str, value: Any) -> None:
        owner_path, _, attribute = name.rpartition(".")
        owner = resolve(instrument, owner_path) if owner_path else instrument
        if attribute.startswith("_") or not hasattr(type(owner), attribute):  # assigning a typo would just add it
            raise AttributeError(f"{type(instrument).__name__} has no property {name!r}")
        setattr(owner, attribute, value)

    def get(self, instrument: Any, name: str) -> Any:
        return resolve(instrument, name)

    def call(self, instrument: Any, name: str) -> None:
        resolve(instrument, name)()

    def identity(self, instrument: Any) -> str:
        return str(instrument.id)

    def close(self, instrument: Any) -> None:
        instrument.adapter.close()  # a PyMeasure instrument closes through its adapter


def _construct(cls: type, name: str, spec: DeviceSpec, context: BenchContext, options: BridgeOptions) -> Any:
    if spec.address is None:
        raise BenchFileError(context.path, f"devices.{name}.address", "a PyMeasure instrument needs its adapter")
    return cls(spec.address, **options.kwargs)


PYMEASURE = Framework("pymeasure", "pymeasure", ("pymeasure.instruments",), PyMeasureAccessor(), _construct)


def build(name: str, spec: DeviceSpec, context: BenchContext) -> BridgeVoltageSource | BridgeDetector:
    """Entry point ``pymeasure``."""
    return build_bridge(name, spec, context, framework=PYMEASURE)
