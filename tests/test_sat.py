"""SAT optimizer: exact agreement with textbook SAM, and each feature (groups, ASAM, masks, GSAM, clamp)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from labsat.sat import SAT, empirical_fisher, sam_perturbation

DTYPE = torch.float64


def _mlp_params(seed: int = 0) -> list[Tensor]:
    """A 3→5→2 tanh MLP as plain leaf tensors, so the textbook update can be written by hand."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(5, 3), (5,), (2, 5), (2,)]
    return [torch.randn(s, generator=gen, dtype=DTYPE).requires_grad_() for s in shapes]


def _data(seed: int = 1) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(16, 3, generator=gen, dtype=DTYPE), torch.randn(16, 2, generator=gen, dtype=DTYPE)


def _mlp_loss(params: list[Tensor], x: Tensor, y: Tensor) -> Tensor:
    w1, b1, w2, b2 = params
    return torch.mean((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2)


def _textbook_sam_gradient(params: list[Tensor], x: Tensor, y: Tensor, rho: float) -> list[Tensor]:
    """∇L(θ + ρ g/‖g‖) with one global norm, written from the SAM paper."""
    g = torch.autograd.grad(_mlp_loss(params, x, y), params)
    norm = math.sqrt(sum(float((gi**2).sum()) for gi in g))
    shifted = [(p + rho * gi / norm).detach().requires_grad_() for p, gi in zip(params, g, strict=True)]
    return [t.detach() for t in torch.autograd.grad(_mlp_loss(shifted, x, y), shifted)]


def _sat_two_step(sat: SAT, params: list[Tensor], x: Tensor, y: Tensor) -> None:
    _mlp_loss(params, x, y).backward()
    sat.first_step(zero_grad=True)
    _mlp_loss(params, x, y).backward()
    sat.second_step(zero_grad=True)


def test_one_step_matches_textbook_sam_with_sgd() -> None:
    x, y = _data()
    params = _mlp_params()
    reference = [p.detach().clone() for p in params]
    sat = SAT(params, torch.optim.SGD, rho=0.05, lr=0.1)
    for _ in range(3):
        _sat_two_step(sat, params, x, y)
        g_sam = _textbook_sam_gradient([r.requires_grad_() for r in reference], x, y, rho=0.05)
        reference = [(r - 0.1 * g).detach() for r, g in zip(reference, g_sam, strict=True)]
        for p, r in zip(params, reference, strict=True):
            torch.testing.assert_close(p.detach(), r, rtol=0, atol=1e-6)


def test_one_step_matches_textbook_sam_with_adam() -> None:
    x, y = _data()
    params = _mlp_params()
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    reference = [p.detach().clone() for p in params]
    m = [torch.zeros_like(r) for r in reference]
    v = [torch.zeros_like(r) for r in reference]
    sat = SAT(params, rho=0.1, lr=lr)  # Adam is the default base optimizer
    for t in range(1, 4):
        _sat_two_step(sat, params, x, y)
        g_sam = _textbook_sam_gradient([r.requires_grad_() for r in reference], x, y, rho=0.1)
        for i, g in enumerate(g_sam):  # Adam (Kingma & Ba) written out
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g**2
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            reference[i] = (reference[i] - lr * m_hat / (v_hat.sqrt() + eps)).detach()
        for p, r in zip(params, reference, strict=True):
            torch.testing.assert_close(p.detach(), r, rtol=0, atol=1e-6)


def test_closure_step_equals_two_step_api() -> None:
    x, y = _data()
    a, b = _mlp_params(), _mlp_params()
    sat_a = SAT(a, rho=0.1, lr=0.01, adaptive=True)
    sat_b = SAT(b, rho=0.1, lr=0.01, adaptive=True)
    for _ in range(3):
        _sat_two_step(sat_a, a, x, y)
        sat_b.step(lambda: _mlp_loss(b, x, y).backward())
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_closure_step_returns_unperturbed_loss() -> None:
    x, y = _data()
    params = _mlp_params()
    sat = SAT(params, rho=0.5, lr=0.01)

    def closure() -> Tensor:
        loss = _mlp_loss(params, x, y)
        loss.backward()
        return loss.detach()

    expected = _mlp_loss(params, x, y).detach()
    torch.testing.assert_close(sat.step(closure), expected)
    with pytest.raises(ValueError, match="closure"):
        sat.step()


def _set_grads(params: list[Tensor], grads: list[Tensor]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()


def _perturbation_after_first_step(sat: SAT, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
    before = [p.detach().clone() for p in params]
    _set_grads(params, grads)
    sat.first_step()
    return [p.detach() - b for p, b in zip(params, before, strict=True)]


def test_global_norm_spans_groups_with_their_own_rho() -> None:
    a = torch.zeros(3, dtype=DTYPE, requires_grad=True)
    b = torch.zeros(4, dtype=DTYPE, requires_grad=True)
    ga, gb = torch.tensor([3.0, 0.0, 4.0], dtype=DTYPE), torch.tensor([1.0, 2.0, 2.0, 0.0], dtype=DTYPE)
    sat = SAT([{"params": [a], "rho": 0.1}, {"params": [b], "rho": 0.3}], torch.optim.SGD, lr=0.1)
    eps_a, eps_b = _perturbation_after_first_step(sat, [a, b], [ga, gb])
    norm = math.sqrt(25.0 + 9.0)  # one norm over both groups, not 5 and 3 separately
    torch.testing.assert_close(eps_a, 0.1 * ga / norm)
    torch.testing.assert_close(eps_b, 0.3 * gb / norm)


def test_rho_zero_group_is_not_perturbed_nor_in_the_norm_but_is_updated() -> None:
    control = torch.ones(3, dtype=DTYPE, requires_grad=True)
    digital = torch.ones(2, dtype=DTYPE, requires_grad=True)
    sat = SAT([{"params": [control]}, {"params": [digital], "rho": 0.0}], torch.optim.SGD, rho=0.2, lr=0.5)
    g_control = torch.tensor([1.0, -2.0, 2.0], dtype=DTYPE)
    eps_c, eps_d = _perturbation_after_first_step(sat, [control, digital], [g_control, torch.ones(2, dtype=DTYPE)])
    torch.testing.assert_close(eps_c, 0.2 * g_control / 3.0)  # ‖ε‖ = ρ: the digital gradient is not in the norm
    assert torch.equal(eps_d, torch.zeros(2, dtype=DTYPE))
    g_adv = torch.tensor([0.5, -1.5], dtype=DTYPE)
    _set_grads([control, digital], [torch.zeros(3, dtype=DTYPE), g_adv])
    sat.second_step()
    torch.testing.assert_close(digital.detach(), 1.0 - 0.5 * g_adv)  # the base optimizer still updated it
    torch.testing.assert_close(control.detach(), torch.ones(3, dtype=DTYPE))  # restored, zero descent gradient


def test_adaptive_with_reference_perturbs_controls_at_zero() -> None:
    theta = torch.tensor([0.0, 0.0, 0.5, -2.0], dtype=DTYPE)
    g = torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=DTYPE)
    plain_asam = sam_perturbation([theta], [g], 0.5, adaptive=True, eta=0.0)[0]
    assert torch.equal(plain_asam[:2], torch.zeros(2, dtype=DTYPE))  # davda54's |θ| scaling: stuck at 0

    ref = torch.tensor([0.3, -0.3, 0.3, 0.3], dtype=DTYPE)
    p = theta.clone().requires_grad_()
    sat = SAT([p], torch.optim.SGD, rho=0.5, adaptive=True, theta_ref=ref, eta=0.01, lr=0.1)
    (eps,) = _perturbation_after_first_step(sat, [p], [g])
    t = (theta - ref).abs() + 0.01
    torch.testing.assert_close(eps, 0.5 * t**2 * g / torch.linalg.vector_norm(t * g))  # ρ T²g/‖Tg‖
    assert bool((eps[:2].abs() > 1e-3).all())

    # the default reference 0 with η > 0 also moves controls sitting at 0
    assert bool((sam_perturbation([theta], [g], 0.5, adaptive=True)[0][:2] != 0).all())


def test_functional_core_matches_the_optimizer() -> None:
    params = _mlp_params()
    x, y = _data()
    grads = [t.detach() for t in torch.autograd.grad(_mlp_loss(params, x, y), params)]
    expected = sam_perturbation(
        [p.detach() for p in params], grads, [0.2, 0.2, 0.0, 0.0], adaptive=True, theta_ref=[0.1, 0.0, 0.0, 0.0]
    )
    sat = SAT(
        [{"params": params[:2], "theta_ref": [0.1, 0.0]}, {"params": params[2:], "rho": 0.0}],
        rho=0.2,
        adaptive=True,
        lr=0.01,
    )
    got = _perturbation_after_first_step(sat, params, grads)
    torch.testing.assert_close(got, expected)


def _grad_sequence(n_params: int, steps: int, seed: int = 0) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n_params, generator=gen, dtype=DTYPE) for _ in range(steps)]


def test_fisher_mask_keeps_top_fraction_of_the_per_sample_fisher() -> None:
    """SSAM-F ranks by mean(g_i²) over samples, which differs from the square of the mean gradient."""
    p = torch.zeros(400, dtype=DTYPE, requires_grad=True)
    sat = SAT([p], torch.optim.SGD, rho=0.1, lr=0.0, sparsity=0.75, mask="fisher", mask_interval=5)
    grads = _grad_sequence(400, 11)
    masks, fishers = [], {}
    for step, g in enumerate(grads):
        assert sat.fisher_due() == (step % 5 == 0)
        if sat.fisher_due():
            samples = _grad_sequence(400, 6, seed=100 + step)
            fishers[step] = empirical_fisher([sample] for sample in samples)[0]
            mean_gradient = torch.stack(samples).mean(0)
            assert not torch.equal(fishers[step], mean_gradient.square())
            sat.set_fisher([fishers[step]])
        (eps,) = _perturbation_after_first_step(sat, [p], [g])
        mask = sat.state[p]["mask"]
        assert mask.sum().item() == 100  # kept fraction is exactly 1 − sparsity
        assert torch.equal(eps[~mask], torch.zeros(300, dtype=DTYPE))
        torch.testing.assert_close(eps[mask], (0.1 * g / g.norm())[mask])  # dense SAM on the kept entries
        masks.append(mask.clone())
        p.grad = torch.zeros_like(p)
        sat.second_step()
    assert all(torch.equal(masks[i], masks[0]) for i in range(5))  # refreshed at ascents 0, 5, 10 only
    assert all(torch.equal(masks[i], masks[5]) for i in range(5, 10))
    for refresh, fisher in fishers.items():
        assert torch.equal(masks[refresh], fisher >= fisher.topk(100).values.min())


def test_fisher_refresh_without_a_fisher_is_refused() -> None:
    p = torch.zeros(10, dtype=DTYPE, requires_grad=True)
    sat = SAT([p], torch.optim.SGD, rho=0.1, lr=0.0, sparsity=0.5, mask="fisher")
    with pytest.raises(ValueError, match="one tensor per perturbed parameter"):
        sat.set_fisher([torch.ones(3, dtype=DTYPE)])
    p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="call set_fisher first"):
        sat.first_step()


def test_dynamic_drop_rate_is_cosine_decayed_over_the_schedule() -> None:
    p = torch.zeros(200, dtype=DTYPE, requires_grad=True)
    sat = SAT([p], torch.optim.SGD, rho=0.1, lr=0.0, sparsity=0.5, mask="dynamic", mask_interval=1,
              drop_rate=0.4, drop_schedule_steps=8, seed=1)  # fmt: skip
    swapped = []
    previous = None
    for g in _grad_sequence(200, 11):
        _perturbation_after_first_step(sat, [p], [g])
        mask = sat.state[p]["mask"].clone()
        if previous is not None:
            swapped.append(int((previous & ~mask).sum()))
        previous = mask
        p.grad = torch.zeros_like(p)
        sat.second_step()
    # refresh at ascent t drops int(0.4 · ½(1 + cos(π t/8)) · 100) of the 100 kept; 0 once t ≥ 8
    expected = [int(0.4 * 0.5 * (1 + math.cos(math.pi * min(t / 8, 1.0))) * 100) for t in range(1, 11)]
    assert swapped == expected and expected[:3] == [38, 34, 27] and expected[-3:] == [0, 0, 0]


def test_dynamic_mask_drops_smallest_gradients_and_regrows_seeded() -> None:
    def run(seed: int) -> tuple[list[Tensor], list[Tensor]]:
        p = torch.zeros(200, dtype=DTYPE, requires_grad=True)
        sat = SAT([p], torch.optim.SGD, rho=0.1, lr=0.0, sparsity=0.5, mask="dynamic", mask_interval=2, seed=seed)
        masks, grads = [], _grad_sequence(200, 5)
        for g in grads:
            (eps,) = _perturbation_after_first_step(sat, [p], [g])
            masks.append(sat.state[p]["mask"].clone())
            assert masks[-1].sum().item() == 100
            assert torch.equal(eps[~masks[-1]], torch.zeros(100, dtype=DTYPE))
            p.grad = torch.zeros_like(p)
            sat.second_step()
        return masks, grads

    masks, grads = run(seed=3)
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    dropped = masks[1] & ~masks[2]
    grown = masks[2] & ~masks[1]
    assert dropped.sum().item() == grown.sum().item() == 50  # drop_rate 0.5 of the 100 kept
    survivors = masks[1] & masks[2]
    assert grads[2].abs()[dropped].max() <= grads[2].abs()[survivors].min()  # smallest |g| went
    assert all(torch.equal(a, b) for a, b in zip(masks, run(seed=3)[0], strict=True))
    assert not torch.equal(masks[0], run(seed=4)[0][0])


def test_gsam_alpha_zero_is_sam_and_alpha_subtracts_the_orthogonal_component() -> None:
    g = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=DTYPE)
    g_adv = torch.tensor([2.0, 1.0, 0.0, 1.0], dtype=DTYPE)
    lr, alpha = 0.1, 0.4

    def run(gsam_alpha: float) -> Tensor:
        p = torch.ones(4, dtype=DTYPE, requires_grad=True)
        sat = SAT([p], torch.optim.SGD, rho=0.05, lr=lr, gsam_alpha=gsam_alpha)
        _set_grads([p], [g])
        sat.first_step()
        _set_grads([p], [g_adv])
        sat.second_step()
        return p.detach()

    sam = torch.ones(4, dtype=DTYPE) - lr * g_adv
    torch.testing.assert_close(run(0.0), sam, rtol=0, atol=0)
    g_perp = g - (g @ g_adv) / (g_adv @ g_adv) * g_adv
    assert abs(float(g_perp @ g_adv)) < 1e-12
    torch.testing.assert_close(run(alpha) - sam, lr * alpha * g_perp)


def test_clamp_keeps_parameters_in_their_box() -> None:
    volts = torch.tensor([0.1, 0.5, 0.9], dtype=DTYPE, requires_grad=True)
    phases = torch.tensor([0.0, 1.0], dtype=DTYPE, requires_grad=True)
    high = torch.tensor([1.0, 0.6, 2.0], dtype=DTYPE)
    sat = SAT(
        [{"params": [volts], "clamp": (0.0, high)}, {"params": [phases], "clamp": (None, 0.5)}],
        torch.optim.SGD,
        rho=0.05,
        lr=1.0,
    )
    for _ in range(3):
        _set_grads([volts, phases], [torch.tensor([1.0, -1.0, -1.0], dtype=DTYPE), -torch.ones(2, dtype=DTYPE)])
        sat.first_step()
        _set_grads([volts, phases], [torch.tensor([1.0, -1.0, -1.0], dtype=DTYPE), -torch.ones(2, dtype=DTYPE)])
        sat.second_step()
    torch.testing.assert_close(volts.detach(), torch.tensor([0.0, 0.6, 2.0], dtype=DTYPE))
    torch.testing.assert_close(phases.detach(), torch.tensor([0.5, 0.5], dtype=DTYPE))


def test_state_dict_resumes_exactly() -> None:
    x, y = _data()

    def make(params: list[Tensor]) -> SAT:
        return SAT(params, rho=0.1, lr=0.01, adaptive=True, sparsity=0.5, mask="dynamic", mask_interval=2, seed=7)

    straight = _mlp_params()
    sat = make(straight)
    for _ in range(6):
        _sat_two_step(sat, straight, x, y)

    first = _mlp_params()
    sat_first = make(first)
    for _ in range(3):
        _sat_two_step(sat_first, first, x, y)
    checkpoint = sat_first.state_dict()
    assert not any("theta" in s for s in checkpoint["sat"]["state"].values())  # step buffers are not saved
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)  # through bytes, as a checkpoint file: no tensor shared with sat_first
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed = [p.detach().clone().requires_grad_() for p in first]
    sat_resumed = make(resumed)
    sat_resumed.load_state_dict(checkpoint)
    assert sat_resumed.base_optimizer.param_groups is sat_resumed.param_groups
    for _ in range(3):
        _sat_two_step(sat_resumed, resumed, x, y)
    torch.testing.assert_close(resumed, [p.detach() for p in straight], rtol=0, atol=1e-12)
    for _ in range(3):  # taking the checkpoint did not disturb the original either
        _sat_two_step(sat_first, first, x, y)
    torch.testing.assert_close([p.detach() for p in first], [p.detach() for p in straight], rtol=0, atol=1e-12)


def test_add_param_group_later_gets_base_defaults() -> None:
    control = torch.ones(3, dtype=DTYPE, requires_grad=True)
    digital = torch.ones(2, dtype=DTYPE, requires_grad=True)
    sat = SAT([control], rho=0.1, lr=0.01)
    sat.add_param_group({"params": [digital], "rho": 0.0})
    assert sat.param_groups[1]["lr"] == 0.01 and sat.param_groups[1]["betas"] == (0.9, 0.999)
    sat.step(lambda: ((control**2).sum() + (digital**2).sum()).backward())
    assert bool((digital < 1).all()) and bool((control < 1).all())
    with pytest.raises(ValueError, match="rho"):
        sat.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "rho": -1.0})


def test_misuse_is_reported() -> None:
    p = torch.ones(2, requires_grad=True)
    sat = SAT([p], lr=0.1)
    with pytest.raises(RuntimeError, match="without first_step"):
        sat.second_step()
    p.grad = torch.ones(2)
    sat.first_step()
    with pytest.raises(RuntimeError, match="twice"):
        sat.first_step()
    with pytest.raises(RuntimeError, match="checkpoint"):
        sat.state_dict()
    with pytest.raises(ValueError, match="sparsity"):
        SAT([p], sparsity=1.0)


def _factorization_loss(w: Tensor) -> Tensor:
    """(ab − 1)²: every point of ab = 1 is a minimum of depth 0, with top Hessian eigenvalue 2(a² + b²)."""
    return (w[0] * w[1] - 1.0) ** 2


def _train(w0: tuple[float, float], make: Callable[[list[Tensor]], torch.optim.Optimizer], steps: int) -> Tensor:
    w = torch.tensor(w0, dtype=DTYPE, requires_grad=True)
    opt = make([w])
    for _ in range(steps):
        if isinstance(opt, SAT):
            opt.step(lambda: _factorization_loss(w).backward())
        else:
            opt.zero_grad()
            _factorization_loss(w).backward()
            opt.step()
    return w.detach()


def test_sat_ends_in_flatter_minimum_than_adam() -> None:
    """From the same unbalanced starts both reach a minimum; SAT's has less than half Adam's curvature."""
    for w0 in [(0.2, 3.0), (3.0, 0.25), (-0.3, -2.5)]:
        adam = _train(w0, lambda p: torch.optim.Adam(p, lr=0.04), steps=120)
        sat = _train(w0, lambda p: SAT(p, rho=0.2, lr=0.04), steps=120)
        assert float(_factorization_loss(adam)) < 1e-3 and float(_factorization_loss(sat)) < 1e-3
        sharpness_adam, sharpness_sat = 2 * float(adam @ adam), 2 * float(sat @ sat)
        assert sharpness_sat < 0.5 * sharpness_adam, (w0, sharpness_adam, sharpness_sat)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x, y = _data()
    cpu = _mlp_params()
    gpu = [p.detach().cuda().requires_grad_() for p in cpu]
    options = {"rho": 0.1, "lr": 0.01, "adaptive": True, "sparsity": 0.5, "mask": "dynamic", "gsam_alpha": 0.2}
    sat_cpu, sat_gpu = SAT(cpu, **options), SAT(gpu, **options)
    for _ in range(3):
        _sat_two_step(sat_cpu, cpu, x, y)
        _sat_two_step(sat_gpu, gpu, x.cuda(), y.cuda())
    torch.testing.assert_close([p.detach().cpu() for p in gpu], [p.detach() for p in cpu])
