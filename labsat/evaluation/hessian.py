"""Sharpness in control space: λmax and λmin by Lanczos, dominant eigenpairs by power iteration, tr H by Hutchinson.

SAT's claim is that its trained controls sit in a flat minimum; the top eigenvalue λmax of the loss
Hessian over the controls is the number the SAT work reports for that (BP 745 vs SAT 1.05 on its MRR
network), so it is measured here with the methods PyHessian uses (power iteration, here on a small
block with Rayleigh–Ritz; Hutchinson with Rademacher probes), without depending on PyHessian (stale
and broken on torch 2.x).

Every Hessian-vector product is forward-over-reverse, ``jvp(grad(f), (θ,), (v,))``: one reverse pass
and one forward-mode pass, with no Hessian ever built, so it scales to any number of controls. The
loss must be a pure function of the flat control vector (see :class:`~labsat.evaluation.flat.FlatControls`).

Power iteration converges to the eigenvalue of largest *magnitude*, which away from a minimum can be a
large negative one; averaged over seeds such signed values mean nothing. The sharpness reported is
therefore the *algebraic* extremes λmax and λmin from Lanczos (:func:`extreme_eigenvalues`), each with
a residual bound that a true eigenvalue lies within, and λmin < 0 says the point is a saddle, not a
minimum. Power iteration stays for the dominant eigenvectors the loss landscape is drawn along.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from labsat.evaluation.flat import LossFn

HVP = Callable[[Tensor], Tensor]
"""``v ↦ H·v`` for one vector ``v`` of the control space's size."""

DEFAULT_CHUNK = 32
"""Probe vectors per vectorised HVP call: enough to amortise the per-call overhead, few enough that
``chunk × (one backward's activations)`` fits in memory for a full test batch."""


class HessianOperator:
    """Products with the Hessian of ``loss_fn`` at ``theta``, forward-over-reverse (``jvp`` of ``grad``).

    Calling it multiplies one vector; :meth:`matmat` multiplies many at once under ``torch.func.vmap``,
    which for small control vectors is one to two orders of magnitude faster than a Python loop, since
    the cost of a tiny HVP is almost all per-operation overhead.
    """

    def __init__(self, loss_fn: LossFn, theta: Tensor) -> None:
        point = theta.detach()
        gradient = torch.func.grad(loss_fn)
        self._hvp: HVP = lambda vector: torch.func.jvp(gradient, (point,), (vector,))[1]

    def __call__(self, vector: Tensor) -> Tensor:
        return self._hvp(vector).detach()

    def matmat(self, vectors: Tensor, chunk_size: int | None = DEFAULT_CHUNK) -> Tensor:
        """``H·vᵢ`` for every row ``vᵢ`` of ``vectors`` ``(m, n)``, ``chunk_size`` rows per vectorised call."""
        return torch.func.vmap(self._hvp, chunk_size=chunk_size)(vectors).detach()


@dataclass(frozen=True)
class Eigenpairs:
    """The ``k`` dominant Hessian eigenvalues (descending magnitude) and their unit eigenvectors (rows)."""

    values: Tensor  # (k,)
    vectors: Tensor  # (k, n), orthonormal rows
    iterations: int
    hvps: int
    converged: bool


OVERSAMPLE = 2
"""Extra vectors carried in the block: convergence then goes as (λ_{k+3}/λ_k)^t instead of (λ_{k+1}/λ_k)^t,
which matters because a trained network's top eigenvalues are often close, while the extra HVPs ride in
the same vectorised call and cost little."""


def _orthonormal_rows(block: Tensor) -> Tensor:
    return torch.linalg.qr(block.T).Q.T


def top_eigenpairs(
    loss_fn: LossFn,
    theta: Tensor,
    k: int = 1,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    hvp: HessianOperator | None = None,
) -> Eigenpairs:
    """Block power (subspace) iteration with Rayleigh–Ritz: the ``k`` eigenpairs of largest magnitude.

    This is power iteration on a block of ``k +`` :data:`OVERSAMPLE` vectors; the block's HVPs go through
    one vectorised call per iteration, and Rayleigh–Ritz separates the eigenvectors within the block, so
    the top two cost about what the top one does (PyHessian's deflation runs one whole power iteration
    after another). Iteration stops when each of the top ``k`` Ritz values changes by less than ``tol``
    relative to its size. ``hvp`` reuses an existing operator.
    """
    if k < 1 or max_iter < 1:
        raise ValueError(f"k and max_iter must be >= 1, got k={k}, max_iter={max_iter}")
    if k > theta.numel():
        raise ValueError(f"cannot find {k} eigenpairs of a {theta.numel()}-dimensional Hessian")
    operator = hvp or HessianOperator(loss_fn, theta)
    generator = torch.Generator(device=theta.device).manual_seed(seed)
    size = min(k + OVERSAMPLE, theta.numel())
    basis = _orthonormal_rows(
        torch.randn(size, theta.numel(), generator=generator, device=theta.device, dtype=theta.dtype)
    )
    previous: Tensor | None = None
    for step in range(1, max_iter + 1):
        images = operator.matmat(basis, chunk_size=None)  # row i is H·basis_i
        projected = basis @ images.T
        values, rotation = torch.linalg.eigh((projected + projected.T) / 2)
        order = values.abs().argsort(descending=True)
        values, rotation = values[order], rotation[:, order]
        top, vectors = values[:k], (rotation.T @ basis)[:k]  # Ritz pairs: the best estimates within the block
        if previous is not None and bool(((top - previous).abs() <= tol * previous.abs()).all()):
            return Eigenpairs(top, vectors, step, step * size, True)
        previous = top
        basis = _orthonormal_rows(rotation.T @ images)  # one power step on the Ritz vectors, in their order
    return Eigenpairs(top, vectors, max_iter, max_iter * size, False)


@dataclass(frozen=True)
class ExtremeEigenvalues:
    """The algebraic λmax and λmin of a Hessian, each within ``±error`` of a true eigenvalue.

    ``error`` is the Ritz residual ``‖H·y − θ·y‖`` of the Ritz pair: for a symmetric ``H`` some eigenvalue
    lies within it of ``θ`` (and the extremes can only be further out), so it is a bound, not a spread.
    """

    lambda_max: float
    lambda_max_error: float
    lambda_min: float
    lambda_min_error: float
    steps: int
    converged: bool


def extreme_eigenvalues(
    loss_fn: LossFn,
    theta: Tensor,
    *,
    max_steps: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    hvp: HessianOperator | None = None,
) -> ExtremeEigenvalues:
    """λmax and λmin of the Hessian by Lanczos with full reorthogonalisation, one HVP a step.

    Lanczos' extreme Ritz values converge to both ends of the spectrum at once, whatever their signs,
    in about as many steps as power iteration takes for the dominant one. It stops when both residual
    bounds are below ``tol`` times the spectrum's span (or the Krylov space is exhausted: then exact).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    operator = hvp or HessianOperator(loss_fn, theta)
    n = theta.numel()
    steps = min(max_steps, n)
    generator = torch.Generator(device=theta.device).manual_seed(seed)
    start = torch.randn(n, generator=generator, device=theta.device, dtype=torch.float64)
    basis = torch.zeros(steps, n, dtype=torch.float64, device=theta.device)
    basis[0] = start / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(steps):
        image = operator(basis[step].to(theta.dtype)).to(torch.float64)
        alphas.append(float(image @ basis[step]))
        image = image - basis[: step + 1].T @ (basis[: step + 1] @ image)  # full reorthogonalisation,
        image = image - basis[: step + 1].T @ (basis[: step + 1] @ image)  # twice is enough
        beta = float(image.norm())
        values, vectors = _tridiagonal_eigh(alphas, betas)
        residuals = beta * vectors[-1].abs()  # ‖H·y − θ·y‖ of each Ritz pair
        span = max(float(values[-1] - values[0]), float(values.abs().max()), 1e-30)
        exhausted = beta <= 1e-12 * span or step + 1 == n
        if exhausted or bool((residuals[[0, -1]] <= tol * span).all()):
            return _extremes(values, residuals, step + 1, True)
        betas.append(beta)
        if step + 1 < steps:
            basis[step + 1] = image / beta
    return _extremes(values, residuals, steps, False)


def _tridiagonal_eigh(alphas: list[float], betas: list[float]) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors (columns) of Lanczos' tridiagonal matrix."""
    size = len(alphas)
    tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if size > 1:
        off = torch.tensor(betas[: size - 1], dtype=torch.float64)
        tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigh(tridiagonal)


def _extremes(values: Tensor, residuals: Tensor, steps: int, converged: bool) -> ExtremeEigenvalues:
    return ExtremeEigenvalues(
        lambda_max=float(values[-1]),
        lambda_max_error=float(residuals[-1]),
        lambda_min=float(values[0]),
        lambda_min_error=float(residuals[0]),
        steps=steps,
        converged=converged,
    )


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's ``tr H ≈ mean_i vᵢᵀHvᵢ`` and the standard error of that mean."""

    value: float
    stderr: float
    probes: int


def hutchinson_trace(
    loss_fn: LossFn,
    theta: Tensor,
    *,
    probes: int = 100,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK,
    hvp: HessianOperator | None = None,
) -> TraceEstimate:
    """Estimate ``tr H`` from ``probes`` Rademacher vectors (exact for a diagonal Hessian: ``vᵢ² = 1``).

    The standard error comes from the spread of the samples, so a caller sees how far to trust it; it
    shrinks as ``√(2·Σ_{i≠j} H_ij² / probes)``: the off-diagonal mass is what costs probes.
    """
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    operator = hvp or HessianOperator(loss_fn, theta)
    generator = torch.Generator(device=theta.device).manual_seed(seed)
    signs = torch.randint(0, 2, (probes, theta.numel()), generator=generator, device=theta.device)
    vectors = (signs * 2 - 1).to(theta.dtype)
    samples = (vectors * operator.matmat(vectors, chunk_size)).sum(dim=1).double().cpu()
    stderr = float(samples.std() / probes**0.5) if probes > 1 else float("nan")
    return TraceEstimate(value=float(samples.mean()), stderr=stderr, probes=probes)


@dataclass(frozen=True)
class Sharpness:
    """A model's sharpness numbers, each with its uncertainty, plus what they cost in HVPs.

    ``lambda_max``/``lambda_min`` are the Hessian's algebraic extremes (``±`` a residual bound);
    ``trace`` is Hutchinson's estimate (``±`` its standard error).
    """

    lambda_max: float
    lambda_max_error: float
    lambda_min: float
    lambda_min_error: float
    trace: float
    trace_stderr: float
    hvps: int
    converged: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def sharpness(
    loss_fn: LossFn,
    controls: Tensor,
    *,
    probes: int = 100,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
) -> Sharpness:
    """λmax and λmin (Lanczos) and tr H (Hutchinson) of ``loss_fn`` at the flat control vector ``controls``."""
    hvp = HessianOperator(loss_fn, controls)
    extremes = extreme_eigenvalues(loss_fn, controls, max_steps=max_iter, tol=tol, seed=seed, hvp=hvp)
    trace = hutchinson_trace(loss_fn, controls, probes=probes, seed=seed, hvp=hvp)
    return Sharpness(
        lambda_max=extremes.lambda_max,
        lambda_max_error=extremes.lambda_max_error,
        lambda_min=extremes.lambda_min,
        lambda_min_error=extremes.lambda_min_error,
        trace=trace.value,
        trace_stderr=trace.stderr,
        hvps=extremes.steps + probes,
        converged=extremes.converged,
    )
