"""The SAT work's MRR setting: LeNet-5 with a digital convolutional front end and photonic fc2 and fc3.

The paper's chip computes only LeNet-5's last two fully connected layers; the convolutions and fc1 run
digitally, with BatchNorm. The photonic layers use the reduced Lorentzian model
(:mod:`labsat.physics.lorentzian`), and drift moves the resonances of those two layers only. That is a
different and easier regime than labsat's all-photonic bank, where every layer drifts and 0.16 nm at −2 K
is more than a ring's half linewidth; this module exists so the paper's numbers can be checked in the
paper's own setting, side by side with labsat's.

Three ways to train, as in the paper's drift study:

* ``bp``: backpropagation in weight space (``w`` clamped to ±1, SGD as in the paper), deployed as ``V = L⁻¹(w)``;
* ``control``: the same network trained on the detunings ``V`` themselves (SAT with ρ = 0, the ablation
  the paper's repository lacks: the control parameterisation alone already buys robustness);
* ``sat``: sharpness-aware training on ``V`` (:class:`labsat.sat.SAT`, adaptive, digital parameters descended
  but never perturbed).

The network adapts LeNet-5 to the image size: 28 × 28 (MNIST IDX) gets the paper's 5 × 5 kernels; an 8 × 8
digit gets 3 × 3 kernels with padding so both pools still halve it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labsat.datasets import Dataset, Split
from labsat.physics.lorentzian import control_for, drift_shift, weight
from labsat.sat import SAT

Space = Literal["weight", "control"]
Method = Literal["bp", "control", "sat"]
METHODS: tuple[Method, ...] = ("bp", "control", "sat")

FC_WIDTHS = (120, 84)
"""fc1 (digital) and fc2 (photonic) widths of LeNet-5; fc3 maps the last onto the classes."""


class LorentzianLinear(nn.Module):
    """A photonic fully connected layer on the reduced model: ``y = x · L(V + s)ᵀ + b`` (``b`` digital).

    ``space = "weight"`` holds the weights (BP's parameterisation) and converts them to detunings only when
    the chip is shifted; ``"control"`` holds the detunings ``V``. ``shift`` (nm) is the uniform resonance
    shift the layer sees (drift), zero while training.
    """

    def __init__(self, inputs: int, outputs: int, space: Space, generator: torch.Generator) -> None:
        super().__init__()
        bound = 1 / math.sqrt(inputs)  # nn.Linear's initial weights, mapped onto the Lorentzian for control space
        w0 = torch.empty(outputs, inputs).uniform_(-bound, bound, generator=generator)
        self.space: Space = space
        self.param = nn.Parameter(w0 if space == "weight" else control_for(w0))
        self.bias = nn.Parameter(torch.empty(outputs).uniform_(-bound, bound, generator=generator))
        self.shift = 0.0

    def controls(self) -> Tensor:
        """The detunings ``V`` (nm) the chip is programmed to."""
        return control_for(self.param) if self.space == "weight" else self.param

    def weights(self, controls: Tensor | None = None) -> Tensor:
        """The weights the chip realises for ``controls`` (default: the layer's own) under its ``shift``."""
        if controls is None and self.space == "weight" and self.shift == 0.0:
            return self.param.clamp(-1.0, 1.0)
        return weight((self.controls() if controls is None else controls) + self.shift)

    def forward(self, x: Tensor, controls: Tensor | None = None) -> Tensor:
        return F.linear(x, self.weights(controls), self.bias)


class HybridLeNet(nn.Module):
    """LeNet-5 with BatchNorm: conv1, conv2 and fc1 digital, fc2 and fc3 photonic (:class:`LorentzianLinear`)."""

    def __init__(self, side: int, n_classes: int, space: Space, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)  # the digital layers' default initialisation
        generator = torch.Generator().manual_seed(seed)
        kernel, pad1, pad2 = (5, 2, 0) if side >= 28 else (3, 1, 1)
        self.front = nn.Sequential(
            nn.Conv2d(1, 6, kernel, padding=pad1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel, padding=pad2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        self.side = side
        flat = int(self.front(torch.zeros(1, 1, side, side)).shape[1])
        self.fc1 = nn.Sequential(nn.Linear(flat, FC_WIDTHS[0]), nn.BatchNorm1d(FC_WIDTHS[0]), nn.ReLU())
        self.fc2 = LorentzianLinear(FC_WIDTHS[0], FC_WIDTHS[1], space, generator)
        self.bn2 = nn.BatchNorm1d(FC_WIDTHS[1])
        self.fc3 = LorentzianLinear(FC_WIDTHS[1], n_classes, space, generator)

    @property
    def photonic(self) -> tuple[LorentzianLinear, LorentzianLinear]:
        return self.fc2, self.fc3

    def photonic_parameters(self) -> Iterator[nn.Parameter]:
        yield from (layer.param for layer in self.photonic)

    def digital_parameters(self) -> Iterator[nn.Parameter]:
        photonic = {id(p) for p in self.photonic_parameters()}
        yield from (p for p in self.parameters() if id(p) not in photonic)

    def features(self, x: Tensor) -> Tensor:
        """fc1's output (the photonic layers' input) for flat images ``x``."""
        return self.fc1(self.front(x.view(-1, 1, self.side, self.side)))

    def head(self, h: Tensor, controls: Sequence[Tensor] | None = None) -> Tensor:
        """The photonic part on fc1's output ``h``, at the layers' own controls or at ``controls`` (fc2, fc3)."""
        c2, c3 = (None, None) if controls is None else controls
        return self.fc3(torch.relu(self.bn2(self.fc2(h, c2))), c3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def set_drift(self, delta_t_k: float) -> None:
        """Shift the photonic layers' resonances as a uniform chip temperature change of ``delta_t_k`` does."""
        for layer in self.photonic:
            layer.shift = drift_shift(delta_t_k)


@dataclass(frozen=True)
class PaperConfig:
    """How one network of the paper's setting is trained, with the paper's optimizers by default.

    The paper trains BP with SGD (lr 10⁻³, momentum 0.5) and SAT with Adam (lr 0.01); ``lr`` None takes the
    method's own. The optimizer matters beyond speed: weight-space BP trained long with Adam drives many weights
    to ±1, the flat ends of the Lorentzian, and is then far more robust to drift than the paper's BP.
    """

    method: Method
    epochs: int = 40
    batch_size: int = 64
    lr: float | None = None
    rho: float = 0.5
    adaptive: bool = True
    seed: int = 0

    @property
    def uses_sgd(self) -> bool:
        return self.method == "bp"

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-3 if self.uses_sgd else 0.01


def image_side(n_features: int) -> int:
    """The side of the square images a flat feature vector of ``n_features`` holds."""
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(f"the paper's network needs square images; {n_features} features are not a square")
    return side


def train(dataset: Dataset, config: PaperConfig) -> HybridLeNet:
    """Train one network on ``dataset``'s training split (seeded batches and initialisation)."""
    space: Space = "weight" if config.method == "bp" else "control"
    net = HybridLeNet(image_side(dataset.n_features), dataset.n_classes, space, config.seed)
    groups: list[dict[str, Any]] = [
        {"params": list(net.photonic_parameters())},
        {"params": list(net.digital_parameters()), "rho": 0.0},
    ]
    rho = config.rho if config.method == "sat" else 0.0
    base: dict[str, Any] = {"momentum": 0.5} if config.uses_sgd else {}
    optimizer = SAT(
        groups,
        torch.optim.SGD if config.uses_sgd else torch.optim.Adam,
        rho=rho,
        adaptive=config.adaptive,
        lr=config.learning_rate,
        **base,
    )
    generator = torch.Generator().manual_seed(config.seed)
    x, y = dataset.train.x, dataset.train.y
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            closure = _closure(net, x[batch], y[batch])
            if rho > 0:
                optimizer.step(closure)
            else:
                optimizer.zero_grad()
                closure()
                optimizer.base_optimizer.step()
            if space == "weight":
                with torch.no_grad():
                    for p in net.photonic_parameters():
                        p.clamp_(-1.0, 1.0)
    net.eval()
    return net


def _closure(net: HybridLeNet, x: Tensor, y: Tensor) -> Callable[[], Tensor]:
    """The loss-and-backward closure :meth:`SAT.step` calls at θ and at θ + ε."""

    def closure() -> Tensor:
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        return loss

    return closure


@torch.no_grad()
def accuracy(net: HybridLeNet, split: Split, delta_t_k: float = 0.0) -> float:
    """Fraction of ``split`` classified correctly with the photonic layers at ``delta_t_k`` of drift."""
    net.eval()
    net.set_drift(delta_t_k)
    try:
        return float((net(split.x).argmax(1) == split.y).float().mean())
    finally:
        net.set_drift(0.0)


def drift_accuracies(net: HybridLeNet, split: Split, drifts_k: Sequence[float]) -> list[float]:
    """Accuracy at each uniform temperature change in ``drifts_k`` (K)."""
    return [accuracy(net, split, t) for t in drifts_k]


def control_loss(net: HybridLeNet, split: Split) -> Callable[[Tensor], Tensor]:
    """The test loss as a pure function of the flat vector of fc2's and fc3's detunings (for the Hessian in ``V``).

    fc1's output is computed once (it does not depend on ``V``); BatchNorm uses its running statistics.
    """
    net.eval()
    with torch.no_grad():
        h = net.features(split.x)
    shapes = [layer.param.shape for layer in net.photonic]
    sizes = [s.numel() for s in shapes]

    def loss(theta: Tensor) -> Tensor:
        c2, c3 = (part.view(shape) for part, shape in zip(torch.split(theta, sizes), shapes, strict=True))
        return F.cross_entropy(net.head(h, (c2, c3)), split.y)

    return loss


def flat_controls(net: HybridLeNet) -> Tensor:
    """fc2's and fc3's detunings as one detached vector (the point :func:`control_loss` is evaluated at)."""
    return torch.cat([layer.controls().detach().reshape(-1) for layer in net.photonic])
