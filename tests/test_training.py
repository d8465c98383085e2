"""The training loop: every method trains, SAT's device ascents cost what they should, runs resume exactly."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from training_fakes import fake_physical

from labsat.datasets import Dataset, Split, load_dataset
from labsat.training.checkpoint import load_checkpoint
from labsat.training.config import TrainConfig
from labsat.training.deploy import twin_weights, weights_to_controls
from labsat.training.evaluate import accuracy
from labsat.training.loop import Trainer, TrainingError, train
from labsat.training.methods import METHODS, MethodError, parse_method
from labsat.training.network import PhotonicNet
from labsat.training.runners import twin_runner

FAST = {"hidden": (8,), "batch_size": 32, "deploy_steps": 50}


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "obp"])  # obp needs a device backward: see its tests
def test_every_method_lowers_the_training_loss_on_iris(iris, method: str) -> None:
    physical, _ = fake_physical(noise=0.005)
    result = train(TrainConfig(method=method, epochs=4, lr=0.05, **FAST), physical, iris)
    losses = result.epoch_losses()
    assert losses[-1] < 0.85 * losses[0], losses


@pytest.mark.parametrize(("ascent", "forwards"), [("fd", 2 * 56 + 1), ("spsa", 2 * 3 + 1)])
def test_device_ascents_cost_what_their_estimators_promise(iris, ascent: str, forwards: int) -> None:
    """FD: 2 forwards of the network per control (56 on iris 4-8-3); SPSA: 2 per direction; +1 PAT descent."""
    physical, device = fake_physical()
    config = TrainConfig(method="pat+sat", ascent=ascent, spsa_q=3, **FAST)
    trainer = Trainer(config, physical, iris)
    losses = [trainer.step(iris.train.x, iris.train.y, i).loss for i in range(3)]
    assert device.stats.forwards == 3 * forwards * trainer.net.depth
    assert losses[-1] < losses[0]


def test_step_costs_and_setup_add_up_to_what_the_device_counted(iris) -> None:
    physical, device = fake_physical(noise=0.01)
    result = train(TrainConfig(method="nat+sat", epochs=1, noise_repeats=4, **FAST), physical, iris)
    assert result.setup_cost.forwards == 4  # NAT's noise fit; its training steps never touch the device
    assert all(step.cost.forwards == 0 for step in result.steps)
    assert asdict(result.cost) == pytest.approx(asdict(device.stats))


@pytest.mark.parametrize(
    "settings",
    [
        {"method": "pat+sat"},
        {"method": "dat"},
        {"method": "nat+sat", "noise_sigma": 0.05},
        {"method": "sat", "ascent": "spsa", "spsa_q": 1},
        {"method": "bp"},
    ],
    ids=["pat+sat", "dat", "nat+sat", "sat-spsa", "bp"],
)
def test_a_resumed_run_takes_exactly_the_steps_of_an_uninterrupted_one(iris, tmp_path: Path, settings: dict) -> None:
    whole_config = TrainConfig(epochs=2, **FAST, **settings)
    whole = train(whole_config, fake_physical()[0], iris)

    directory = tmp_path / "run"
    train(TrainConfig(epochs=1, **FAST, **settings), fake_physical()[0], iris, checkpoints=directory)
    saved = load_checkpoint(directory)
    assert saved is not None and saved["epoch"] == 1
    # The stopped run had epochs=1 in its settings; continuing to 2 epochs is the same run with a longer plan.
    saved["settings"] = whole_config.settings()
    torch.save(saved, directory / "checkpoint.pt")
    resumed = train(whole_config, fake_physical()[0], iris, checkpoints=directory, resume=True)

    assert [s.loss for s in resumed.steps] == [s.loss for s in whole.steps]
    for name, tensor in whole.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[name], tensor), name


def test_resume_refuses_a_checkpoint_of_other_settings(iris, tmp_path: Path) -> None:
    train(TrainConfig(method="bp-control", epochs=1, **FAST), fake_physical()[0], iris, checkpoints=tmp_path)
    with pytest.raises(TrainingError, match="other settings"):
        train(
            TrainConfig(method="bp-control", epochs=1, lr=0.1, **FAST),
            fake_physical()[0],
            iris,
            checkpoints=tmp_path,
            resume=True,
        )


def test_weights_are_deployed_as_controls_that_realise_them() -> None:
    physical, _ = fake_physical(twin="truth")
    target = torch.rand(12, 20, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    controls = weights_to_controls(physical, target)
    low, high = physical.control_range
    assert bool(((controls >= low) & (controls <= high)).all())
    realised = twin_weights(physical.twin_layer, controls)
    assert float((realised - target).square().mean().sqrt()) < 0.02


def test_method_names_and_ascents() -> None:
    assert parse_method("pat+sat") == parse_method("pat+sat", "pat")
    assert parse_method("sat").base == "bp-control" and parse_method("sat").ascent == "twin"
    assert parse_method("dat+sat", "spsa").ascent == "spsa"
    assert parse_method("bp").weight_space and not parse_method("bp-control").weight_space
    with pytest.raises(MethodError, match="SAT methods only"):
        parse_method("pat", "fd")
    with pytest.raises(MethodError, match="unknown method 'sam'"):
        parse_method("sam")
    config = TrainConfig(method="dat+sat", hidden=(4, 3), seed=5)
    assert TrainConfig.from_settings(config.settings()) == config


def test_an_encoder_is_seeded_trained_and_survives_a_snapshot() -> None:
    """The digital front end draws from the run's seed, learns with the digital group, and reloads from a snapshot."""
    physical, _ = fake_physical()
    dataset = load_dataset("iris")
    config = TrainConfig(method="bp-control", epochs=2, hidden=(), encoder=3, seed=4)
    first, second = (Trainer(config, physical, dataset).net for _ in range(2))
    assert first.encoder is not None and second.encoder is not None
    assert torch.equal(first.encoder.linear.weight, second.encoder.linear.weight)
    inputs = first.encode(dataset.train.x).detach()
    assert inputs.shape == (len(dataset.train), 3) and float(inputs.min()) > 0 and float(inputs.max()) < 1
    net = train(config, physical, dataset).net
    assert net.encoder is not None and not torch.equal(net.encoder.linear.weight, first.encoder.linear.weight)
    restored = PhotonicNet.from_snapshot(net.sizes, net.snapshot())
    assert restored.layer_sizes == (3, 3)
    x = dataset.test.x[:5]
    run = twin_runner(physical)
    assert torch.equal(restored(x, run), net(x, run))


@pytest.mark.parametrize(
    ("settings", "kept"),
    [({"sparsity": 0.75, "mask": "fisher"}, 0.25), ({"sparsity": 0.5, "mask": "dynamic"}, 0.5), ({}, None)],
)
def test_ssam_masks_the_ascent_of_a_training_run(iris, settings: dict, kept: float | None) -> None:
    """SSAM's sparsity reaches the optimizer a run trains with: only the kept fraction of controls is perturbed."""
    physical, _ = fake_physical()
    trainer = Trainer(TrainConfig(method="sat", **settings, **FAST), physical, iris)
    trainer.step(iris.train.x, iris.train.y, 0)
    photonic = trainer.optimizer.param_groups[0]["params"]
    masks = [trainer.optimizer.state[p].get("mask") for p in photonic]
    if kept is None:
        assert masks == [None] * len(photonic)  # plain SAM: no mask at all
        return
    fraction = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    assert fraction == pytest.approx(kept, abs=0.02)


def test_ssam_fisher_comes_from_per_sample_gradients(iris, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Fisher a run hands SSAM-F is the mean of fisher_samples per-sample squared gradients."""
    physical, _ = fake_physical()
    trainer = Trainer(TrainConfig(method="sat", sparsity=0.5, fisher_samples=5, **FAST), physical, iris)
    handed: list[list[torch.Tensor]] = []
    monkeypatch.setattr(trainer.optimizer, "set_fisher", lambda fisher: handed.append(fisher))
    monkeypatch.setattr(trainer.optimizer, "first_step", lambda zero_grad=True: None)
    monkeypatch.setattr(trainer.optimizer, "second_step", lambda zero_grad=True: None)
    x, y = iris.train.x[:8], iris.train.y[:8]
    trainer.step(x, y, 0)
    descent, _ = trainer._sources()
    params = trainer.optimizer.perturbed_parameters()
    expected = [torch.zeros_like(p) for p in params]
    for i in range(5):
        for p in params:
            p.grad = None
        descent(trainer.net, x[i : i + 1], y[i : i + 1])
        for total, p in zip(expected, params, strict=True):
            assert p.grad is not None
            total += p.grad.square() / 5
    (fisher,) = handed
    for got, want in zip(fisher, expected, strict=True):
        torch.testing.assert_close(got, want)
    for p in params:  # the square of the five samples' mean gradient is another, smaller quantity
        p.grad = None
    descent(trainer.net, x[:5], y[:5])
    grads = [p.grad for p in params]
    assert all(g is not None for g in grads)
    assert not all(torch.allclose(f, g.square()) for f, g in zip(fisher, grads, strict=True) if g is not None)


def test_ssam_dynamic_drop_rate_follows_the_run_length(iris) -> None:
    physical, _ = fake_physical()
    cosine = Trainer(TrainConfig(method="sat", sparsity=0.5, mask="dynamic", **FAST), physical, iris)
    trained_on = len(cosine.dataset.train)  # the training split less its validation share
    assert trained_on == len(iris.train) - round(0.15 * len(iris.train))
    assert cosine.optimizer.drop_schedule_steps == TrainConfig().epochs * math.ceil(trained_on / 32)
    constant = Trainer(
        TrainConfig(method="sat", sparsity=0.5, mask="dynamic", drop_schedule="constant", **FAST), physical, iris
    )
    assert constant.optimizer.drop_schedule_steps is None


def test_gsam_changes_the_descent_and_only_the_descent(iris) -> None:
    """With the same seed and data, GSAM's first step differs from SAM's; with α = 0 the two are the same run."""
    moved: dict[float, list[torch.Tensor]] = {}
    for alpha in (0.0, 0.0, 0.5):
        physical, _ = fake_physical()
        trainer = Trainer(TrainConfig(method="sat", gsam_alpha=alpha, **FAST), physical, iris)
        trainer.step(iris.train.x, iris.train.y, 0)
        moved.setdefault(alpha, []).append(torch.cat([t.flatten() for t in trainer.net.theta]))
    torch.testing.assert_close(moved[0.0][0], moved[0.0][1])
    assert not torch.allclose(moved[0.0][0], moved[0.5][0])


def test_each_epoch_reports_validation_accuracy_and_the_test_split_is_never_read(iris) -> None:
    config = TrainConfig(method="bp-control", epochs=3, lr=0.05, **FAST)
    result = train(config, fake_physical()[0], iris)
    assert len(result.validation_accuracy) == 3
    assert [row["validation_accuracy"] for row in result.per_epoch()] == result.validation_accuracy
    held = iris.with_validation(config.validation_fraction, config.seed)
    assert held.validation is not None
    final = accuracy(result.net, held.validation, twin_runner(fake_physical()[0]))
    assert result.validation_accuracy[-1] == final  # measured on the held-out share, after the epoch's last step
    assert result.validation_accuracy[-1] > 0.5  # better than chance (1/3): it is a real measurement

    poisoned = Dataset(iris.name, iris.train, Split(torch.full_like(iris.test.x, math.nan), iris.test.y), 3)
    blind = train(config, fake_physical()[0], poisoned)  # a run that read the test split would see NaNs
    assert [s.loss for s in blind.steps] == [s.loss for s in result.steps]
    assert blind.validation_accuracy == result.validation_accuracy

    none = train(config.model_copy(update={"validation_fraction": 0.0}), fake_physical()[0], iris)
    assert none.validation_accuracy == [] and none.per_epoch()[0]["validation_accuracy"] is None
    assert len(none.steps) == 3 * math.ceil(len(iris.train) / 32)  # every training sample trains
