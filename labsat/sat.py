"""Sharpness-aware training (SAT) on physical control parameters.

SAT is SAM (Foret et al., ICLR 2021) applied to the *controls* θ of a physical network (heater currents,
voltages, phases) instead of abstract weights: the control→weight map sits inside the layer, so the
sharpness that SAT flattens is the one a drifting or mis-set control actually sees. Each step climbs to an
adversarial point θ + ε inside a ρ-ball, takes the gradient there, and descends from θ with it.

Two entry points share one implementation of ε:

* :class:`SAT`, a ``torch.optim.Optimizer`` wrapping any base optimizer, with the davda54/sam two-step API
  (:meth:`SAT.first_step`, :meth:`SAT.second_step`) and a closure :meth:`SAT.step`. It only reads
  ``p.grad``, so the gradient may come from autograd through a twin, from PAT, or be written there by a
  finite-difference or SPSA estimator (:mod:`labsat.ascent`).
* :func:`sam_perturbation`, the functional core, for loops that hold parameters and gradients as plain
  tensors.

Differences from davda54/sam, each for a physical reason:

* Adaptive (ASAM) scaling uses ``T = |θ − θ_ref| + η`` rather than ``|θ|``: a microring heater at its
  resonance sits at θ = 0, and plain ASAM would never perturb it although drift moves it like any other.
* ρ is per parameter group, so digital parameters (ρ = 0) are descended but never perturbed; the norm of
  the ascent is still one global norm over all perturbed groups.
* Sparse perturbation masks (SSAM-F / SSAM-D, Mi et al. 2022), the GSAM decomposition (Zhuang et al.
  2022), a box projection for hardware control limits, and a ``state_dict`` that includes the base
  optimizer so a crashed job can resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor
from torch.optim import Optimizer

Reference = float | Tensor
"""A reference point θ_ref for the adaptive scaling: a scalar or a tensor broadcastable to the parameter."""

Bound = float | Tensor | None
"""One side of a box constraint: a scalar, a tensor broadcastable to the parameter, or None (unbounded)."""

MaskKind = Literal["fisher", "dynamic"]

NORM_EPS = 1e-12
"""Added to the ascent norm so that a zero gradient gives ε = 0 instead of NaN (as in davda54/sam)."""

_T = TypeVar("_T")

_STEP_BUFFERS = ("theta", "clean_grad")
"""Per-parameter state that lives only from first_step to second_step (reallocated after a resume)."""


def _per_tensor(value: _T | Sequence[_T], n: int, name: str) -> list[_T]:
    """Expand a per-call setting to one entry per tensor; lists and tuples are taken as already per-tensor."""
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(f"{name}: expected {n} entries (one per tensor), got {len(value)}")
        return list(value)
    return [value] * n  # type: ignore[list-item]


def sam_perturbation(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    rho: float | Sequence[float],
    *,
    adaptive: bool | Sequence[bool] = False,
    theta_ref: Reference | Sequence[Reference] = 0.0,
    eta: float | Sequence[float] = 0.01,
    masks: Sequence[Tensor | None] | None = None,
) -> list[Tensor]:
    """The SAM/ASAM ascent ε for each tensor, with one global norm.

    ``ε_i = ρ_i · T_i² g_i / ‖T g‖`` where ``T_i = |θ_i − θ_ref,i| + η_i`` if ``adaptive`` (else 1) and
    the norm runs over every tensor with ρ > 0 together, so the ascent is a step to the edge of one ball
    in the joint control space, not one ball per tensor. Tensors with ρ = 0 get a zero ε and do not enter
    the norm. A mask (SSAM) is applied *after* normalising, as in the SSAM code, so a masked ε is shorter
    than ρ: the kept coordinates move exactly as they would under dense SAM.

    Each of ``rho``, ``adaptive``, ``theta_ref`` and ``eta`` is either one value for all tensors or a
    list/tuple with one entry per tensor. ``grads`` may come from autograd or from any estimator; nothing
    here needs a graph. No host synchronisation happens, so this is as cheap on CUDA as on CPU.
    """
    n = len(params)
    if len(grads) != n:
        raise ValueError(f"got {n} params but {len(grads)} grads")
    rhos = _per_tensor(rho, n, "rho")
    adaptives = _per_tensor(adaptive, n, "adaptive")
    refs = _per_tensor(theta_ref, n, "theta_ref")
    etas = _per_tensor(eta, n, "eta")
    mask_list: list[Tensor | None] = [None] * n if masks is None else _per_tensor(masks, n, "masks")

    # direction_i = T_i² g_i (or g_i itself, which must then not be modified in place)
    directions: list[Tensor | None] = []
    owned: list[bool] = []
    norms: list[Tensor] = []
    for p, g, r, a, ref, e in zip(params, grads, rhos, adaptives, refs, etas, strict=True):
        if r < 0:
            raise ValueError(f"rho must be >= 0, got {r}")
        if r == 0:
            directions.append(None)
            owned.append(False)
            continue
        if a:
            scale = (p.detach() - (ref.to(p) if isinstance(ref, Tensor) else ref)).abs_().add_(e)
            scaled = scale * g
            norms.append(torch.linalg.vector_norm(scaled))
            directions.append(scaled.mul_(scale))
            owned.append(True)
        else:
            norms.append(torch.linalg.vector_norm(g))
            directions.append(g)
            owned.append(False)

    if not norms:
        return [torch.zeros_like(p) for p in params]
    inv_norm = 1.0 / (torch.linalg.vector_norm(torch.stack(norms)) + NORM_EPS)

    out: list[Tensor] = []
    for p, d, own, r, m in zip(params, directions, owned, rhos, mask_list, strict=True):
        if d is None:
            out.append(torch.zeros_like(p))
            continue
        eps = d.mul_(inv_norm) if own else d * inv_norm
        if r != 1.0:
            eps.mul_(r)
        if m is not None:
            eps.mul_(m)
        out.append(eps)
    return out


def _check_group(group: dict[str, Any]) -> None:
    """Reject group settings that would silently do the wrong thing later, at the time they are given."""
    if group["rho"] < 0:
        raise ValueError(f"rho must be >= 0, got {group['rho']}")
    if group["eta"] < 0:
        raise ValueError(f"eta must be >= 0, got {group['eta']}")
    ref = group["theta_ref"]
    if isinstance(ref, list | tuple) and len(ref) != len(group["params"]):
        raise ValueError(f"theta_ref has {len(ref)} entries for {len(group['params'])} params")
    box = group["clamp"]
    if box is not None and (not isinstance(box, list | tuple) or len(box) != 2):
        raise ValueError(f"clamp must be (low, high) or None, got {box!r}")


class SAT(Optimizer):
    """Sharpness-aware wrapper around a base optimizer, acting on control parameters.

    Per-group options (defaults given here, overridable in each param group):

    * ``rho`` — radius of the ascent ball; 0 excludes the group from the ascent (digital parameters), but
      the base optimizer still updates it with the gradient taken at the perturbed controls.
    * ``adaptive``, ``theta_ref``, ``eta`` — ASAM-style scaling ``T = |θ − θ_ref| + η``. ``theta_ref`` is
      a scalar, a tensor broadcastable to every parameter of the group, or a list with one entry per
      parameter.
    * ``clamp`` — ``(low, high)`` box applied after every update (each side a scalar, a broadcastable
      tensor, or None), because physical controls have hardware limits. The perturbed point θ + ε is not
      projected: the ascent probes the landscape, the box only constrains where training leaves θ.

    Optimizer-wide options:

    * ``sparsity`` in [0, 1) with ``mask="fisher"`` (SSAM-F: keep the top ``1 − sparsity`` fraction of
      the perturbed coordinates by their empirical Fisher, the mean over samples of each sample's squared
      gradient, refreshed every ``mask_interval`` steps; the caller measures it, since only it can take
      per-sample gradients: when :meth:`fisher_due` says so, it hands :meth:`set_fisher` the Fisher of
      :meth:`perturbed_parameters`, e.g. from :func:`empirical_fisher`) or ``mask="dynamic"`` (SSAM-D: a
      seeded random mask; every ``mask_interval`` steps a fraction of the kept coordinates with the
      smallest ``|g|`` is dropped and as many are regrown at random among the others; the fraction is
      ``drop_rate``, cosine-decayed to 0 over ``drop_schedule_steps`` ascents when that is given, as in
      the SSAM paper). The mask is global over all perturbed groups and ε is zero outside it.
    * ``gsam_alpha`` — GSAM: descend along ``g_adv − α·g_⊥`` where ``g_⊥`` is the part of the clean
      gradient orthogonal to the adversarial one (computed over the perturbed parameters). 0 is SAM.
    * ``seed`` — seeds the dynamic mask, so a run is reproducible.

    Remaining keyword arguments go to ``base_optimizer`` (e.g. ``lr``). Param groups are shared with the
    base optimizer; give an LR scheduler ``sat.base_optimizer``, whose ``step`` runs once per SAT step
    (a scheduler on ``sat`` itself would warn when only first_step/second_step are used).

    Usage::

        loss_fn(model(x), y).backward()
        sat.first_step(zero_grad=True)       # θ ← θ + ε
        loss_fn(model(x), y).backward()
        sat.second_step(zero_grad=True)      # θ ← base_step(θ, ∇L(θ + ε)), then clamp

    For a black-box device, write an estimate into ``p.grad`` before each call instead of calling
    ``backward``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: Callable[..., Optimizer] = torch.optim.Adam,
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        theta_ref: Reference | Sequence[Reference] = 0.0,
        clamp: tuple[Bound, Bound] | None = None,
        sparsity: float = 0.0,
        mask: MaskKind = "fisher",
        mask_interval: int = 100,
        drop_rate: float = 0.5,
        drop_schedule_steps: int | None = None,
        gsam_alpha: float = 0.0,
        seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        if mask not in ("fisher", "dynamic"):
            raise ValueError(f"mask must be 'fisher' or 'dynamic', got {mask!r}")
        if mask_interval < 1:
            raise ValueError(f"mask_interval must be >= 1, got {mask_interval}")
        if drop_schedule_steps is not None and drop_schedule_steps < 1:
            raise ValueError(f"drop_schedule_steps must be >= 1, got {drop_schedule_steps}")
        if not 0.0 < drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be in (0, 1], got {drop_rate}")
        if gsam_alpha < 0:
            raise ValueError(f"gsam_alpha must be >= 0, got {gsam_alpha}")
        self._sat_defaults: dict[str, Any] = {
            "rho": rho,
            "adaptive": adaptive,
            "eta": eta,
            "theta_ref": theta_ref,
            "clamp": clamp,
        }
        super().__init__(params, dict(self._sat_defaults))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

        self.sparsity = sparsity
        self.mask_kind: MaskKind = mask
        self.mask_interval = mask_interval
        self.drop_rate = drop_rate
        self.drop_schedule_steps = drop_schedule_steps
        self._fisher: list[Tensor] | None = None
        self.gsam_alpha = gsam_alpha
        # CPU generator: the same seed gives the same masks on CPU and CUDA.
        self._generator = torch.Generator().manual_seed(seed)
        self._ascents = 0  # completed first_step calls; drives the mask schedule
        self._in_ascent = False
        self._perturbed: list[Tensor] = []

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; after construction it goes through the base optimizer so it gets its defaults too."""
        if not hasattr(self, "base_optimizer"):  # called from Optimizer.__init__
            super().add_param_group(param_group)
            _check_group(param_group)
            return
        for name, default in self._sat_defaults.items():
            param_group.setdefault(name, default)
        self.base_optimizer.add_param_group(param_group)  # appends to the shared list
        _check_group(param_group)

    def perturbed_parameters(self) -> list[Tensor]:
        """The parameters the ascent perturbs (groups with ρ > 0), in the order :meth:`set_fisher` expects."""
        return [p for group in self.param_groups if group["rho"] != 0 for p in group["params"]]

    def fisher_due(self) -> bool:
        """Whether the next :meth:`first_step` refreshes an SSAM-F mask and so needs :meth:`set_fisher` first."""
        if self.sparsity == 0 or self.mask_kind != "fisher":
            return False
        unmasked = any("mask" not in self.state[p] for p in self.perturbed_parameters())
        return unmasked or self._ascents % self.mask_interval == 0

    def set_fisher(self, fisher: Sequence[Tensor]) -> None:
        """The empirical Fisher of each of :meth:`perturbed_parameters`, for the next mask refresh."""
        params = self.perturbed_parameters()
        if len(fisher) != len(params) or any(f.shape != p.shape for f, p in zip(fisher, params, strict=False)):
            raise ValueError("set_fisher takes one tensor per perturbed parameter, shaped like it")
        self._fisher = [f.detach() for f in fisher]

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True) -> None:
        """Move every perturbed parameter to θ + ε, remembering θ (and the clean gradient for GSAM)."""
        if self._in_ascent:
            raise RuntimeError("first_step called twice without second_step")
        params, grads, rhos, adaptives, refs, etas = self._ascent_inputs()
        if params:
            masks = self._update_masks(params, grads) if self.sparsity > 0 else None
            eps = sam_perturbation(params, grads, rhos, adaptive=adaptives, theta_ref=refs, eta=etas, masks=masks)
            for p, g, e in zip(params, grads, eps, strict=True):
                state = self.state[p]
                _store(state, "theta", p)
                if self.gsam_alpha > 0:
                    _store(state, "clean_grad", g)
                p.add_(e)
        self._perturbed = params
        self._in_ascent = True
        self._ascents += 1
        if zero_grad:
            self._drop_grads()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = True) -> None:
        """Restore θ and apply the base optimizer with the gradient taken at θ + ε, then project to the box."""
        if not self._in_ascent:
            raise RuntimeError("second_step called without first_step")
        for p in self._perturbed:
            p.copy_(self.state[p]["theta"])
        if self.gsam_alpha > 0:
            self._gsam_decompose()
        self.base_optimizer.step()
        self._project()
        self._perturbed = []
        self._in_ascent = False
        if zero_grad:
            self._drop_grads()

    def step(self, closure: Callable[[], Tensor | None] | None = None) -> Tensor | None:  # type: ignore[override]
        """A whole SAT step: ``closure`` at θ, ascent, ``closure`` at θ + ε, descent.

        ``closure`` must compute the loss and call ``backward()``; gradients are zeroed here before each
        call, so do not run a backward pass yourself first. Returns the loss at θ (the unperturbed loss,
        which is what training curves should show). The gradients from θ + ε are left in ``p.grad``.
        """
        if closure is None:
            raise ValueError("SAT.step needs a closure that recomputes the loss and calls backward()")
        closure = torch.enable_grad()(closure)
        self._drop_grads()
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step(zero_grad=False)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """SAT state, base-optimizer state and the mask schedule/RNG, so a resumed run continues exactly."""
        if self._in_ascent:
            raise RuntimeError("cannot checkpoint between first_step and second_step")
        sat = super().state_dict()
        # θ and the clean gradient are only alive between first_step and second_step: not worth saving.
        sat["state"] = {
            index: {key: value for key, value in state.items() if key not in _STEP_BUFFERS}
            for index, state in sat["state"].items()
        }
        return {
            "sat": sat,
            "base": self.base_optimizer.state_dict(),
            "ascents": self._ascents,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; re-links the param groups shared with the base optimizer."""
        if self._in_ascent:
            raise RuntimeError("cannot load a state between first_step and second_step")
        self.base_optimizer.load_state_dict(state_dict["base"])
        super().load_state_dict(state_dict["sat"])
        self.base_optimizer.param_groups = self.param_groups
        for state in self.state.values():
            if "mask" in state:  # Optimizer.load_state_dict casts every state tensor to the param dtype
                state["mask"] = state["mask"].bool()
        self._ascents = state_dict["ascents"]
        self._generator.set_state(state_dict["generator"])

    def _drop_grads(self) -> None:
        """``zero_grad(set_to_none=True)`` without its profiler scope, which costs more than a small layer's step."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _ascent_inputs(
        self,
    ) -> tuple[list[Tensor], list[Tensor], list[float], list[bool], list[Reference], list[float]]:
        """Flatten the perturbed groups into per-tensor lists for :func:`sam_perturbation`."""
        params: list[Tensor] = []
        grads: list[Tensor] = []
        rhos: list[float] = []
        adaptives: list[bool] = []
        refs: list[Reference] = []
        etas: list[float] = []
        for group in self.param_groups:
            if group["rho"] == 0:
                continue
            ref = group["theta_ref"]
            per_param = isinstance(ref, list | tuple)
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                params.append(p)
                grads.append(p.grad)
                rhos.append(group["rho"])
                adaptives.append(group["adaptive"])
                refs.append(ref[i] if per_param else ref)
                etas.append(group["eta"])
        return params, grads, rhos, adaptives, refs, etas

    def _kept(self, n: int) -> int:
        """Number of coordinates a mask keeps: the ``1 − sparsity`` fraction, at least one."""
        return max(1, math.floor((1.0 - self.sparsity) * n + 0.5))

    def _update_masks(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """Advance the SSAM mask schedule for this ascent and return one boolean mask per parameter."""
        states = [self.state[p] for p in params]
        phase = self._ascents % self.mask_interval
        missing = any("mask" not in s for s in states)
        if self.mask_kind == "fisher":
            if phase == 0 or missing:
                if self._fisher is None:
                    raise RuntimeError("SSAM-F refreshes its mask on this step: call set_fisher first (see fisher_due)")
                by_param = dict(zip(self.perturbed_parameters(), self._fisher, strict=True))
                fisher = torch.cat([by_param[p].flatten() for p in params])
                keep = torch.zeros_like(fisher, dtype=torch.bool)
                keep[torch.topk(fisher, self._kept(fisher.numel()), sorted=False).indices] = True
                self._fisher = None
                _scatter_mask(keep, params, states)
        elif missing:
            device = params[0].device
            scores = torch.rand(sum(p.numel() for p in params), generator=self._generator).to(device)
            keep = torch.zeros_like(scores, dtype=torch.bool)
            keep[torch.topk(scores, self._kept(scores.numel()), sorted=False).indices] = True
            _scatter_mask(keep, params, states)
        elif phase == 0:
            self._drop_and_regrow(params, grads, states)
        return [s["mask"] for s in states]

    def _drop_fraction(self) -> float:
        """SSAM-D's drop rate at this ascent: ``drop_rate``, cosine-decayed to 0 over the schedule if one is set."""
        if self.drop_schedule_steps is None:
            return self.drop_rate
        progress = min(self._ascents / self.drop_schedule_steps, 1.0)
        return self.drop_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _drop_and_regrow(self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]) -> None:
        """SSAM-D refresh: drop the kept coordinates with the smallest |g|, regrow as many at random."""
        keep = torch.cat([s["mask"].flatten() for s in states])
        n = keep.numel()
        kept = self._kept(n)
        n_swap = min(int(self._drop_fraction() * kept), n - kept)
        if n_swap == 0:
            return
        magnitude = torch.cat([g.abs().flatten() for g in grads])
        drop = torch.topk(torch.where(keep, magnitude, math.inf), n_swap, largest=False).indices
        # Uniform scores in [0, 1) for the coordinates outside the mask, −1 inside: a random subset of outsiders.
        scores = torch.rand(n, generator=self._generator).to(keep.device)
        grow = torch.topk(torch.where(keep, -1.0, scores), n_swap).indices
        keep[drop] = False
        keep[grow] = True
        _scatter_mask(keep, params, states)

    def _gsam_decompose(self) -> None:
        """Replace g_adv by ``g_adv − α·g_⊥`` with ``g_⊥ = g − (⟨g, g_adv⟩/‖g_adv‖²)·g_adv`` (global products)."""
        pairs = [(p.grad, self.state[p]["clean_grad"]) for p in self._perturbed if p.grad is not None]
        if not pairs:
            return
        inner = torch.stack([torch.vdot(ga.flatten(), gc.flatten()) for ga, gc in pairs]).sum()
        adv_sq = torch.stack([torch.vdot(ga.flatten(), ga.flatten()) for ga, _ in pairs]).sum()
        coef = inner / (adv_sq + NORM_EPS)
        alpha = self.gsam_alpha
        for ga, gc in pairs:
            # g_adv − α(g − c·g_adv) = (1 + αc)·g_adv − α·g
            ga.mul_(1.0 + alpha * coef).sub_(gc, alpha=alpha)

    def _project(self) -> None:
        """Clamp each parameter of a group with a ``clamp`` box back into it."""
        for group in self.param_groups:
            box = group["clamp"]
            if box is None:
                continue
            low, high = box
            for p in group["params"]:
                if low is not None:
                    p.clamp_(min=low.to(p) if isinstance(low, Tensor) else low)
                if high is not None:
                    p.clamp_(max=high.to(p) if isinstance(high, Tensor) else high)


def _store(state: dict[str, Any], key: str, value: Tensor) -> None:
    """Copy ``value`` into a buffer kept in ``state`` (allocated once, reused every step)."""
    buffer = state.get(key)
    if buffer is None or buffer.shape != value.shape:
        state[key] = value.detach().clone()
    else:
        buffer.copy_(value)


def _scatter_mask(keep: Tensor, params: list[Tensor], states: list[dict[str, Any]]) -> None:
    """Split a flat global mask into one mask per parameter, stored in that parameter's state."""
    for s, p, chunk in zip(states, params, keep.split([p.numel() for p in params]), strict=True):
        s["mask"] = chunk.view_as(p)


def empirical_fisher(sample_gradients: Iterable[Sequence[Tensor]]) -> list[Tensor]:
    """SSAM-F's Fisher: the mean over samples of each sample's squared gradient, per parameter.

    ``sample_gradients`` yields one gradient per parameter for each sample (batch-1 backwards, as the
    SSAM paper takes them); the square of a batch's *mean* gradient would be a different, much smaller
    quantity that cancels where samples disagree.
    """
    total: list[Tensor] | None = None
    count = 0
    for gradients in sample_gradients:
        squares = [g.detach().square() for g in gradients]
        total = squares if total is None else [t.add_(q) for t, q in zip(total, squares, strict=True)]
        count += 1
    if total is None:
        raise ValueError("empirical_fisher needs at least one sample's gradients")
    return [t / count for t in total]
