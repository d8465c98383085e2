"""A model's control tensors as one flat vector θ, the coordinate system sharpness is measured in.

Sharpness, landscapes and Hessian-vector products all act on "a loss as a function of one vector".
A trained model holds several control tensors (one heater map per physical layer), so this module packs
them into θ and unpacks θ back into named views. The unpacking is plain ``split``/``view``, so it runs
inside ``torch.func`` transforms and the Hessian of ``loss(unflatten(θ))`` is the Hessian over all
controls jointly, cross-layer blocks included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

LossFn = Callable[[Tensor], Tensor]
"""A scalar loss (0-d tensor) of a flat control vector θ; pure, so torch.func can differentiate it twice."""


@dataclass(frozen=True)
class FlatControls:
    """Named control tensors packed into one vector, in a fixed (insertion) order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    vector: Tensor

    @classmethod
    def pack(cls, controls: Mapping[str, Tensor]) -> FlatControls:
        """Pack ``{name: tensor}`` (detached copies; the originals are never touched)."""
        if not controls:
            raise ValueError("no control tensors to pack")
        tensors = [t.detach() for t in controls.values()]
        vector = torch.cat([t.reshape(-1) for t in tensors]).clone()
        return cls(tuple(controls), tuple(t.shape for t in tensors), vector)

    @property
    def numel(self) -> int:
        return self.vector.numel()

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of ``theta`` shaped like the packed tensors (differentiable, transform-safe)."""
        sizes = [shape.numel() for shape in self.shapes]
        parts = torch.split(theta, sizes)
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)}

    def loss(self, loss_of: Callable[[dict[str, Tensor]], Tensor]) -> LossFn:
        """Turn a loss of named controls into a loss of the flat vector."""
        return lambda theta: loss_of(self.unflatten(theta))

    def filters(self) -> Tensor:
        """A group label per element: one group per row of each control matrix, one per 1-D tensor.

        A row of an ``(out, in)`` control matrix is the heaters feeding one output neuron, the control-space
        analogue of a convolution filter; filter normalisation (Li et al., 2018) rescales directions per row.
        """
        labels: list[Tensor] = []
        first = 0
        for shape in self.shapes:
            rows = shape[0] if len(shape) > 1 else 1
            per_row = shape.numel() // max(rows, 1)
            labels.append(torch.arange(first, first + rows).repeat_interleave(per_row))
            first += rows
        return torch.cat(labels).to(self.vector.device)
