"""The trained network: photonic layers (physical controls) with small digital parts between them.

``sizes = (64, 16, 10)`` gives: photonic 64→16, digital normalise + per-feature scale/bias + ReLU,
photonic 16→10, digital normalise + scale/bias → logits. The digital parts are what a bench PC does
anyway between two passes over the chip (standardise the vector of detector readings, rescale, add a
bias, rectify so the next layer's inputs are non-negative intensities); they are cheap, per-feature, and
trained as their own parameter group so SAT can leave them unperturbed. Everything that costs device
time lives in the photonic layers.

The network does not know *how* a photonic layer is evaluated: :meth:`PhotonicNet.forward` takes a
:data:`LayerRunner` (the twin, the device, PAT, …), which is how one network serves every method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_EPS = 1e-5
"""Added to the variance before the standardisation divides by it (``torch.nn.LayerNorm``'s default)."""

ENCODER_WEIGHT = "encoder.linear.weight"
"""A snapshot's key for the encoder's weight; its presence says the network has an encoder."""

LayerRunner = Callable[[int, Tensor, Tensor], Tensor]
"""``(layer index, x, θ) -> y``: how the photonic layer ``index`` is evaluated in one pass."""

ControlShape = Callable[[int, int], tuple[int, ...]]
"""``(out, in) -> shape`` of a photonic layer's controls, for systems whose controls are not an ``(out, in)`` matrix."""


class DigitalAffine(nn.Module):
    """Per-sample standardisation of a photonic layer's readout, then per-feature ``scale`` and ``bias``.

    Standardising each readout vector across its features (a layer norm) removes what every output of
    a layer shares: the common mode of balanced detection (an off-resonance ring weighs −1, so every row
    carries ``−Σx``) and a common gain. Both move with the chip's temperature and laser power, and a
    bench PC removes them from a vector of detector readings for free.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, y: Tensor) -> Tensor:
        return F.layer_norm(y, self.scale.shape, self.scale, self.bias, eps=NORM_EPS)


class DigitalEncoder(nn.Module):
    """A trained digital map from the raw features to the first photonic layer's inputs: linear, then a sigmoid.

    A system with fewer inputs than the data has features (an N-mode mesh and a 64-pixel digit) needs the
    data compressed first; training the compression with the rest of the network, rather than fixing it
    (PCA), lets the front end adapt to the chip, as the SAT paper's LeNet front end does for its mesh. The
    sigmoid keeps the outputs in (0, 1): amplitudes an amplitude modulator can set, never all zero.
    """

    def __init__(self, features: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, width)

    @property
    def width(self) -> int:
        return self.linear.out_features

    def reset(self, generator: torch.Generator) -> None:
        """Redraw the weights like ``nn.Linear`` does (U(±1/√fan_in)), but from ``generator``: seeded runs."""
        bound = 1 / math.sqrt(self.linear.in_features)
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.linear(x))


class PhotonicNet(nn.Module):
    """Alternating photonic layers and digital maps (:class:`DigitalAffine`); ReLU between, none after the last.

    ``theta[i]`` (out, in) is photonic layer ``i``'s trainable physical quantity: heater controls in
    control space, or ideal weights in [−1, 1] for weight-space BP before it is deployed
    (:func:`labsat.training.deploy.deploy_weights`). ``control_shape(out, in)`` replaces that shape for
    systems whose controls are not a matrix (an MZI mesh's heater vector). With ``encoder`` a trained
    :class:`DigitalEncoder` maps the ``sizes[0]`` features onto ``encoder`` inputs of the first photonic layer.
    """

    def __init__(
        self, sizes: Sequence[int], control_shape: ControlShape | None = None, encoder: int | None = None
    ) -> None:
        super().__init__()
        if len(sizes) < 2 or sizes[0] < 1 or any(n < 2 for n in sizes[1:]):
            raise ValueError(f"sizes must be an input width and layer widths of at least 2, got {tuple(sizes)}")
        if encoder is not None and encoder < 1:
            raise ValueError(f"an encoder needs at least one output, got {encoder}")
        self.sizes = tuple(int(n) for n in sizes)
        self.encoder = None if encoder is None else DigitalEncoder(self.sizes[0], encoder)
        shape = control_shape or (lambda out, inp: (out, inp))
        self.theta = nn.ParameterList(
            nn.Parameter(torch.zeros(shape(out, inp))) for inp, out in pairwise(self.layer_sizes)
        )
        self.digital = nn.ModuleList(DigitalAffine(out) for out in self.sizes[1:])

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths the photonic layers see: ``sizes`` with the input width replaced by the encoder's, if any."""
        return self.sizes if self.encoder is None else (self.encoder.width, *self.sizes[1:])

    @property
    def depth(self) -> int:
        """Number of photonic layers."""
        return len(self.theta)

    def encode(self, x: Tensor) -> Tensor:
        """The first photonic layer's inputs for features ``x``: the encoder's outputs, or ``x`` itself."""
        return x if self.encoder is None else self.encoder(x)

    def forward(self, x: Tensor, run: LayerRunner) -> Tensor:
        h = self.encode(x)
        for index, (theta, affine) in enumerate(zip(self.theta, self.digital, strict=True)):
            h = affine(run(index, h, theta))
            if index < self.depth - 1:
                h = torch.relu(h)
        return h

    def photonic_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.theta

    def digital_parameters(self) -> Iterator[nn.Parameter]:
        if self.encoder is not None:
            yield from self.encoder.parameters()
        yield from self.digital.parameters()

    def snapshot(self) -> dict[str, Tensor]:
        """Detached CPU copies of every tensor (what the store saves as the model's controls)."""
        return {name: value.detach().cpu().clone() for name, value in self.state_dict().items()}

    @classmethod
    def from_snapshot(cls, sizes: Sequence[int], tensors: dict[str, Tensor]) -> PhotonicNet:
        """Rebuild a network saved with :meth:`snapshot` (e.g. a model from the store).

        The control shapes are read from the snapshot, so a model of any system (a tiled bank's
        ``(out, in)`` matrices, a mesh's heater vectors) loads without knowing that system.
        """
        encoder = tensors.get(ENCODER_WEIGHT)
        net = cls(sizes, encoder=None if encoder is None else encoder.shape[0])
        for index, theta in enumerate(net.theta):
            theta.data = torch.empty_like(tensors[f"theta.{index}"])
        net.load_state_dict(tensors)
        return net
