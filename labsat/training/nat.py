"""Noise-aware training: the twin's forward pass carries noise of the size the device really has.

A device does not return the same numbers twice, and it does not stay where it was set. Training on a
noiseless twin finds settings whose margins are thinner than that scatter; injecting noise of the
*measured* size during training makes the network keep its decisions clear of it. Three terms make up
the model (:class:`NoiseModel`), each fitted or configured, each recorded with the trained model:

* **read noise** (detector, ADC): additive in the layer's output. The System scales each sample to full
  input power before it is sent and scales back after, so it appears as ``σ_read · max(x)`` per sample.
  On the simulated bank it is ≈ 0.003 of a full-scale output: far too small to matter on its own, which is
  why NAT injecting only this term behaves like plain twin training.
* **control noise**: what scatters the *controls* between readings (a heater DAC's jitter, a noisy current
  source, an SLM's flicker). Its effect on the output is ``J·δθ``, with ``J = ∂y/∂θ`` the twin's sensitivity,
  so repeated readings at fixed settings have per-output variance ``σ_read²·max(x)² + σ_control²·Σ_θ J²``.
  :func:`fit_noise` fits both σ to the measured spread by (non-negative, variance-weighted) least squares
  over every sample and output: elements with a steep sensitivity tell the control term from the read one.
  The simulated bank has no stochastic control noise at all (its heater DAC only quantises, deterministically,
  by 61 µV), so there the fit gives σ_control ≈ 0: an honest answer, and the reason for the third term.
* **drift**: the chip's slow change between calibration and use (a bank's temperature: every resonance moves
  by ``0.08 nm/K``). Readings a few milliseconds apart cannot see it, and waiting minutes of bench time
  inside a training run is no way to measure it, so its size is configured (``TrainConfig.noise_drift``, in
  the system's drift unit: kelvin on a bank) and mapped through the twin: the mean-square output change of the
  twin drifted by ``±noise_drift`` (:attr:`PhysicalLayer.drift_twin`) divided by the mean ``Σ_θ J²`` gives the
  control σ of the same output size. The default σ of 0.5 K puts the −1 K the SAT work evaluates at 2σ. On
  the default simulated bench it is worth ≈ 0.06 V of heater noise, where the fitted control noise is below
  0.1 mV: the drift term is what gives NAT noise of the size that matters. It keeps digits at 89 % on the
  device at −1 K where twin-trained BP falls to 62 %, for the same clean accuracy; 1 K (≈ 0.14 V) holds −2 K
  better but costs eight points clean (``benchmarks/bench_nat.py``). A system whose twin models no drift (a
  mesh, a D2NN) gets no drift term. The drift is a common shift, injected here as independent control noise
  of the same output size: what NAT learns is margin against control errors of that size, whatever their
  pattern.

The training forward (:func:`nat_runner`) draws fresh noise every call: controls ``θ + σ_θ·N(0, 1)`` with
``σ_θ = √(σ_control² + σ_drift²)``, then read noise on the output. The controls are never written anywhere
with the noise: it lives in the twin alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from labsat.training.network import LayerRunner
from labsat.training.physical import LayerFn, PhysicalLayer


@dataclass(frozen=True)
class NoiseModel:
    """The noise NAT injects, and where each σ came from (recorded with the trained model)."""

    read_sigma: float
    """Read noise per unit input scale (output units per ``max(x)``)."""
    control_sigma: float
    """Control noise in control units (volts on a bank, radians on a mesh or D2NN), fitted or configured."""
    drift_sigma: float
    """The configured drift mapped to control units (0 where the twin models no drift)."""
    drift_scale: float
    """The configured drift, in the system's drift unit (kelvin on a bank)."""
    fitted: bool
    """Whether read and control σ were measured on the device (False: both were configured)."""
    repeats: int
    """Device readings the fit took (0 if nothing was measured)."""

    @property
    def injected_control_sigma(self) -> float:
        """σ of the Gaussian added to every control in every training forward: control and drift together."""
        return math.hypot(self.control_sigma, self.drift_sigma)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "injected_control_sigma": self.injected_control_sigma}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseModel:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def input_scale(x: Tensor) -> Tensor:
    """Each sample's largest input ``(B, 1)``: the factor the System scales that sample's readings by."""
    return x.detach().amax(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def repeated_readings(physical: PhysicalLayer, x: Tensor, theta: Tensor, repeats: int) -> Tensor:
    """``repeats`` device forwards of one batch at fixed controls, ``(repeats, B, out)``; costs ``repeats`` forwards."""
    if repeats < 2:
        raise ValueError(f"need at least 2 repeats to see a spread, got {repeats}")
    with torch.no_grad():
        return torch.stack([physical.system_forward(x, theta) for _ in range(repeats)])


def fit_read_noise(physical: PhysicalLayer, x: Tensor, theta: Tensor, repeats: int = 8) -> float:
    """σ of the whole spread per unit input scale, as if all of it were read noise (costs ``repeats`` forwards).

    The pooled variance over samples and outputs, normalised per sample by ``max(x)``: the right answer where
    the controls do not scatter; :func:`fit_noise` separates the two.
    """
    outputs = repeated_readings(physical, x, theta, repeats)
    normalised = outputs / input_scale(x)
    return float(normalised.var(dim=0, unbiased=True).mean().sqrt())


def sensitivity(twin: LayerFn, x: Tensor, theta: Tensor) -> Tensor:
    """``Σ_θ (∂y_bo/∂θ)²`` ``(B, out)``: how much output variance unit-variance noise on every control gives.

    From the twin's full Jacobian; a vectorised one where the twin allows it, one backward per output else.
    """
    x, theta = x.detach(), theta.detach()

    def layer(t: Tensor) -> Tensor:
        return twin(x, t)

    try:
        jacobian = torch.autograd.functional.jacobian(layer, theta, vectorize=True)
    except RuntimeError:  # an operation vmap cannot batch: one row at a time
        jacobian = torch.autograd.functional.jacobian(layer, theta)
    with torch.no_grad():
        y = layer(theta)
    return jacobian.reshape(*y.shape, -1).square().sum(-1)


def drift_sigma(physical: PhysicalLayer, x: Tensor, theta: Tensor, scale: float, gain: Tensor) -> float:
    """The control σ whose output effect has the mean square of a drift of ``±scale`` (0: none modelled).

    ``gain`` is :func:`sensitivity` at ``(x, θ)``. The twin drifted both ways is compared with the undrifted
    one, so the answer holds on either side of the calibration point.
    """
    if scale == 0 or physical.drift_twin is None:
        return 0.0
    with torch.no_grad():
        still = physical.twin_layer(x, theta)
        moved = [physical.drift_twin(sign * scale)(x, theta) - still for sign in (1.0, -1.0)]
        mean_square = torch.stack(moved).square().mean()
        return float((mean_square / gain.mean().clamp_min(torch.finfo(gain.dtype).tiny)).sqrt())


def fit_spread(variance: Tensor, read_feature: Tensor, control_feature: Tensor) -> tuple[float, float]:
    """Non-negative ``(a, c)`` with ``variance ≈ a·read_feature + c·control_feature`` elementwise.

    Least squares weighted by the inverse square of the predicted variance (a sample variance's own spread
    grows with it): one plain solve, then one reweighted one. Each coefficient is clipped at 0, the other
    then refitted alone (a two-variable non-negative least squares). Columns are scaled to unit maximum
    first, so volts² and radians² fit alike; a device that reads back exactly (no spread) gives ``(0, 0)``.
    """
    v = variance.reshape(-1).double()
    features = torch.stack([read_feature.expand_as(variance).reshape(-1), control_feature.reshape(-1)], 1).double()
    top, scale = float(v.max()), features.abs().amax(dim=0)
    if top <= 0:
        return 0.0, 0.0
    usable = scale > 0
    columns = torch.where(usable, scale, torch.ones_like(scale))
    a, b = features / columns, v / top
    weights = torch.ones_like(b)
    coefficients = torch.zeros(2, dtype=torch.float64)
    for _ in range(2):
        coefficients = _nonnegative_fit(a * usable, b, weights)
        predicted = a @ coefficients
        floor = max(float(predicted.max()), float(b.max())) * 1e-3
        weights = 1 / predicted.clamp_min(floor).square()
    read, control = (coefficients * top / columns * usable).tolist()
    return float(read), float(control)


def _nonnegative_fit(features: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    root = weights.sqrt()
    a, b = features * root[:, None], target * root
    solution = torch.linalg.lstsq(a, b[:, None], driver="gelsd").solution[:, 0]
    if bool((solution >= 0).all()) and bool(torch.isfinite(solution).all()):
        return solution
    best = torch.zeros(2, dtype=a.dtype)
    for keep in (0, 1):
        column = a[:, keep]
        norm = float(column @ column)
        candidate = torch.zeros(2, dtype=a.dtype)
        candidate[keep] = max(float(column @ b) / norm, 0.0) if norm > 0 else 0.0
        if float((a @ candidate - b).square().sum()) < float((a @ best - b).square().sum()):
            best = candidate
    return best


def fit_noise(physical: PhysicalLayer, x: Tensor, theta: Tensor, repeats: int = 8, drift: float = 0.0) -> NoiseModel:
    """Read and control σ from ``repeats`` readings of one batch at fixed controls, plus ``drift`` mapped to controls.

    Costs ``repeats`` device forwards; the sensitivity and the drift mapping come from the twin, free. See the
    module doc for the model.
    """
    readings = repeated_readings(physical, x, theta, repeats)
    variance = readings.var(dim=0, unbiased=True).to(x.dtype)
    gain = sensitivity(physical.twin_layer, x, theta)
    read_var, control_var = fit_spread(variance, input_scale(x).square(), gain)
    return NoiseModel(
        read_sigma=math.sqrt(read_var),
        control_sigma=math.sqrt(control_var),
        drift_sigma=drift_sigma(physical, x, theta, drift, gain),
        drift_scale=drift,
        fitted=True,
        repeats=repeats,
    )


def configured_noise(
    physical: PhysicalLayer, x: Tensor, theta: Tensor, read: float, control: float, drift: float
) -> NoiseModel:
    """The noise model of configured read and control σ (no device reading); the drift still goes through the twin."""
    gain = sensitivity(physical.twin_layer, x, theta) if drift and physical.drift_twin is not None else None
    mapped = 0.0 if gain is None else drift_sigma(physical, x, theta, drift, gain)
    return NoiseModel(read, control, mapped, drift, fitted=False, repeats=0)


def nat_runner(physical: PhysicalLayer, noise: NoiseModel | float, generator: torch.Generator) -> LayerRunner:
    """Twin forward at ``θ + σ_θ·N(0, 1)`` plus read noise ``σ_read·max(x)·N(0, 1)``, fresh every call.

    A bare number is a read-noise-only model. ``generator`` is a CPU one (seeded runs on any device).
    """
    model = noise if isinstance(noise, NoiseModel) else NoiseModel(float(noise), 0.0, 0.0, 0.0, False, 0)
    control = model.injected_control_sigma

    def draw(like: Tensor) -> Tensor:
        return torch.randn(like.shape, generator=generator).to(device=like.device, dtype=like.dtype)

    def run(index: int, x: Tensor, theta: Tensor) -> Tensor:
        noisy = theta + draw(theta) * control if control > 0 else theta
        y = physical.twin_layer(x, noisy)
        return y + draw(y) * (model.read_sigma * input_scale(x))

    return run
