"""What every chip-parameter record and chip module shares: named tensor fields, moved and registered as one.

A chip (an MRR bank, an MZI mesh) is a frozen dataclass whose tensor fields are listed in ``FIELDS``; a
twin is a torch module holding the same tensors, the fitted ones as parameters and the rest as buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Self

import torch
from torch import Tensor, nn

from labsat.physics.compute import functorch_active


class ChipTensors:
    """``tensors()`` and ``to()`` for a frozen dataclass of chip parameters whose tensor fields ``FIELDS`` names."""

    FIELDS: ClassVar[tuple[str, ...]]
    SHARED: ClassVar[frozenset[str]] = frozenset()
    """Tensor fields every chip of a population shares (a crosstalk kernel set by geometry, not fabrication)."""

    @property
    def batch_shape(self) -> torch.Size:
        """Leading chip-population dimensions ``S`` (empty for a single chip)."""
        raise NotImplementedError

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered per ``key`` until a tensor changes in place; never while grads are tracked.

        A layer call derives many small tensors from the chip (per-ring constants of an MRR bank, the coupler
        amplitudes of an MZI mesh); at layer sizes each costs as much as a full-size operation, so recomputing
        them for a fixed chip on every call costs a small layer much of its time. Inside a ``torch.func``
        transform a value is read but never stored: what is computed there is wrapped for that transform and
        dies with it.
        """
        if self.tracks_grad() or torch.is_inference_mode_enabled():
            return compute()
        stamp = tuple(getattr(self, name)._version for name in self.FIELDS)
        derived: dict[Hashable, tuple[tuple[int, ...], Any]] = self.__dict__.setdefault("_derived", {})
        entry = derived.get(key)
        if entry is not None and entry[0] == stamp:
            return entry[1]
        value = compute()
        if not functorch_active():
            derived[key] = (stamp, value)
        return value

    def tracks_grad(self) -> bool:
        """Whether any tensor field requires grad (a twin being fitted): then nothing derived from it is cached."""
        return any(getattr(self, name).requires_grad for name in self.FIELDS)

    def tensors(self) -> dict[str, Tensor]:
        """The tensor fields by name."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def with_tensors(self, tensors: Mapping[str, Tensor]) -> Self:
        """A copy with the named tensor fields replaced (the flags and scalars kept)."""
        unknown = set(tensors) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"unknown chip parameters {sorted(unknown)}; known: {', '.join(self.FIELDS)}")
        return replace(self, **tensors)  # type: ignore[type-var]  # a dataclass whose tensor fields are named here

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Self:
        """A copy with every tensor moved to ``device`` and/or cast to the floating ``dtype``."""
        return self.with_tensors({name: t.to(device=device, dtype=dtype) for name, t in self.tensors().items()})

    def select(self, index: int) -> Self:
        """Chip ``index`` of a population (first batch dimension); fields in ``SHARED`` are common to all chips."""
        if not self.batch_shape:
            raise ValueError("select() needs a batch of chips; these parameters describe a single chip")
        return self.with_tensors({name: t if name in self.SHARED else t[index] for name, t in self.tensors().items()})


def register_chip_tensors(module: nn.Module, params: ChipTensors, trainable: Iterable[str]) -> None:
    """``params``'s tensors on ``module``: those named in ``trainable`` as parameter copies, the rest as buffers.

    The trainable ones are what a calibration fits; buffers share storage with ``params``. An unknown name
    is refused, listing the known ones.
    """
    trainable = set(trainable)
    unknown = trainable - set(params.FIELDS)
    if unknown:
        raise ValueError(f"unknown chip parameters {sorted(unknown)}; known: {', '.join(params.FIELDS)}")
    for name, value in params.tensors().items():
        if name in trainable:
            module.register_parameter(name, nn.Parameter(value.detach().clone()))
        else:
            module.register_buffer(name, value)
