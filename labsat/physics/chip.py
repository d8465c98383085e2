"""What every chip-parameter record and chip module shares: named tensor fields, moved and registered as one.

A chip (an MRR bank, an MZI mesh) is a frozen dataclass whose tensor fields are listed in ``FIELDS``; a
twin is a torch module holding the same tensors, the fitted ones as parameters and the rest as buffers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import ClassVar, Self

import torch
from torch import Tensor, nn


class ChipTensors:
    """``tensors()`` and ``to()`` for a frozen dataclass of chip parameters whose tensor fields ``FIELDS`` names."""

    FIELDS: ClassVar[tuple[str, ...]]

    def tensors(self) -> dict[str, Tensor]:
        """The tensor fields by name."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Self:
        """A copy with every tensor moved to ``device`` and/or cast to the floating ``dtype``."""
        return replace(self, **{name: t.to(device=device, dtype=dtype) for name, t in self.tensors().items()})  # type: ignore[type-var]


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
