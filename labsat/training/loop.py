"""The one training loop: every method is a gradient source plugged into the same SAT step.

Each step is a SAT step (:class:`labsat.sat.SAT` over Adam). Methods without SAT give every parameter
group ρ = 0, which makes the step an exact plain Adam step: one optimizer, one checkpoint format, and
"control-space BP" is literally "SAT with ρ = 0". With SAT, the ascent source gives ∇L at θ, SAT moves to
θ + ε, the method's own source gives ∇L there, and Adam descends from θ with it.

Costs are measured, not assumed: every step records the device forwards, tile programs, samples and
estimated bench time the System counted while it ran (:class:`~labsat.readout.QueryStats`), and a
run reports their sum, including one-off setup (NAT's noise fit).

A share of the training split is held out as a validation split (``TrainConfig.validation_fraction``),
and every epoch reports its accuracy there, on the model the method trains (free, no device query): that
is the number to choose hyperparameters and epochs by. The test split is never seen here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from labsat.ascent import SPSA, CentralDifference, GradientEstimator
from labsat.datasets import Dataset
from labsat.errors import LabsatError
from labsat.readout import QueryStats
from labsat.sat import SAT, empirical_fisher
from labsat.training.checkpoint import load_checkpoint, save_checkpoint
from labsat.training.config import TrainConfig
from labsat.training.dat import DualAdaptive
from labsat.training.deploy import deploy_weights, initialise, peak_controls
from labsat.training.evaluate import accuracy
from labsat.training.fdsat import FDSAT
from labsat.training.methods import Backprop, DeviceEstimate, GradientSource
from labsat.training.nat import NoiseModel, configured_noise, fit_noise, nat_runner
from labsat.training.network import LayerRunner, PhotonicNet
from labsat.training.optical_backprop import obp_runner
from labsat.training.pat import pat_runner
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import WEIGHT_RANGE, device_runner, ideal_runner, twin_runner


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step: its loss (at θ where the method measures one) and what it cost the device."""

    epoch: int
    step: int
    loss: float
    cost: QueryStats

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "loss": self.loss, **asdict(self.cost)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        cost = QueryStats(**{f.name: data[f.name] for f in fields(QueryStats)})
        return cls(int(data["epoch"]), int(data["step"]), float(data["loss"]), cost)


@dataclass
class TrainResult:
    """A finished run: the control-space network and everything that was measured on the way."""

    net: PhotonicNet
    config: TrainConfig
    steps: list[StepRecord]
    setup_cost: QueryStats
    wall_s: float
    validation_accuracy: list[float] = field(default_factory=list)
    """Accuracy on the validation split after each epoch (empty: no validation split)."""
    noise: NoiseModel | None = None
    """The noise NAT injected (None: not a NAT run)."""

    @property
    def cost(self) -> QueryStats:
        """Device queries and bench time of the whole run (setup plus every step)."""
        return _total([self.setup_cost, *(s.cost for s in self.steps)])

    def per_epoch(self) -> list[dict[str, Any]]:
        """Per epoch: mean training loss, validation accuracy (None without a validation split) and the device
        queries and bench time its steps cost."""
        return [
            epoch_row(epoch, [s for s in self.steps if s.epoch == epoch], self.validation_accuracy)
            for epoch in sorted({s.epoch for s in self.steps})
        ]

    def epoch_losses(self) -> list[float]:
        """Mean training loss of each epoch."""
        return [row["loss"] for row in self.per_epoch()]


def epoch_row(epoch: int, steps: list[StepRecord], validation_accuracy: list[float]) -> dict[str, Any]:
    """Epoch ``epoch`` (from 0) as one row: number (from 1), mean loss, validation accuracy (None without a
    validation split) and what its ``steps`` cost the device."""
    validation = validation_accuracy[epoch] if epoch < len(validation_accuracy) else None
    loss = sum(s.loss for s in steps) / len(steps)
    cost = _total([s.cost for s in steps])
    return {"epoch": epoch + 1, "loss": loss, "validation_accuracy": validation, **asdict(cost)}


class TrainingError(LabsatError):
    """A run that cannot start or continue as asked (e.g. a checkpoint from other settings)."""


EpochCallback = Callable[[dict[str, Any]], None]
"""Hears of each finished epoch as its :func:`epoch_row` (what a live loss curve plots)."""
StepCallback = Callable[[StepRecord], None]


class Trainer:
    """A run in progress: network, optimizer, gradient sources, random streams, records.

    Everything that determines the next step is in :meth:`state_dict`, so a run resumed from a checkpoint
    takes the same steps an uninterrupted one would (on a twin exactly; on a device up to its noise).
    """

    def __init__(self, config: TrainConfig, physical: PhysicalLayer, dataset: Dataset) -> None:
        self.config = config
        self.method = config.parsed
        if self.method.base == "obp":
            obp_runner(physical)  # refuses a device without a backward pass now, before any step is paid for
        self.physical = physical
        self.dataset = dataset.with_validation(config.validation_fraction, config.seed)
        self.data_order = torch.Generator().manual_seed(config.seed)
        self.noise = torch.Generator().manual_seed(config.seed + 1)
        self.net = PhotonicNet(
            (dataset.n_features, *config.hidden, dataset.n_classes), physical.control_shape, encoder=config.encoder
        )
        initialise(
            self.net, None if self.method.weight_space else physical, torch.Generator().manual_seed(config.seed + 2)
        )
        self.net.to(dataset.train.x.device)  # train where the data is (a dataset moved to CUDA trains there)
        self.optimizer = self._optimizer()
        self.dat: DualAdaptive | None = None
        if self.method.base == "dat":
            with torch.random.fork_rng(devices=[]):  # the correctors' initialisers draw from the global stream
                torch.manual_seed(config.seed + 3)
                self.dat = DualAdaptive(
                    physical,
                    self.net.layer_sizes,
                    hidden=config.dat_hidden,
                    lr=config.dat_lr,
                    fit_steps=config.dat_fit_steps,
                )
        self.noise_model: NoiseModel | None = None
        self.validation_accuracy: list[float] = []
        self.epoch = 0
        self.steps: list[StepRecord] = []
        self.setup_cost = QueryStats()
        self.wall_s = 0.0
        self._descent: GradientSource | None = None
        self._ascent: GradientSource | None = None
        self.fd_sat = None if config.fd_disturbance is None else FDSAT(
            physical, self.method, self._base_source, disturbance=config.fd_disturbance,
            delta_max=config.fd_delta_max, gain=config.fd_gain, two_sided=config.fd_two_sided,
        )  # fmt: skip

    # -- construction ---------------------------------------------------------------------------------

    def _optimizer(self) -> SAT:
        cfg, method = self.config, self.method
        box = WEIGHT_RANGE if method.weight_space else self.physical.control_range  # then _project_controls
        photonic = {
            "params": list(self.net.photonic_parameters()),
            "lr": cfg.lr,
            "rho": cfg.rho if method.sat else 0.0,
            "adaptive": cfg.adaptive,
            "eta": cfg.eta,
            "theta_ref": self._theta_ref(),
            "clamp": box,
        }
        digital = {
            "params": list(self.net.digital_parameters()),
            "lr": cfg.digital_lr,
            "rho": cfg.digital_rho if method.sat else 0.0,
            "adaptive": False,
        }
        return SAT(
            [photonic, digital],
            torch.optim.Adam,
            sparsity=cfg.sparsity,
            mask=cfg.mask,
            mask_interval=cfg.mask_interval,
            drop_rate=cfg.drop_rate,
            drop_schedule_steps=self._total_steps() if cfg.drop_schedule == "cosine" else None,
            gsam_alpha=cfg.gsam_alpha,
            seed=cfg.seed,
        )

    def _total_steps(self) -> int:
        """Optimizer steps in the whole run: every epoch takes the training split in batches."""
        return self.config.epochs * math.ceil(len(self.dataset.train) / self.config.batch_size)

    def _theta_ref(self) -> float | list[torch.Tensor]:
        """SAT's adaptive reference point: a number, or for ``"peak"`` each element's resonance.

        A peak needs controls that form the layer's weight matrix (one control per weight); a system
        whose controls are something else (a mesh's phases, see ``PhysicalLayer.control_shape``) has no
        per-weight resonance, and ``"peak"`` measures from 0 there.
        """
        ref, cfg = self.config.theta_ref, self.config
        if ref != "peak":
            return float(ref)
        if not (self.method.sat and cfg.adaptive) or self.physical.control_shape is not None:
            return 0.0
        return [peak_controls(self.physical, p.shape) for p in self.net.photonic_parameters()]

    def _sources(self) -> tuple[GradientSource, GradientSource | None]:
        """The descent source and (SAT only) the ascent source, built on first use (NAT needs its σ first)."""
        if self._descent is None:
            self._descent = self._base_source()
            self._ascent = self._ascent_source() if self.method.sat else None
            if self.fd_sat is not None:  # per epoch, like SPSA's stream: a resumed run draws the same offsets
                self.fd_sat.reseed(self.config.seed * 100_003 + 50_021 + self.epoch)
        return self._descent, self._ascent

    def _base_source(self, physical: PhysicalLayer | None = None) -> GradientSource:
        """The method's own gradient source, on ``physical`` (default: the run's layer; FD-SAT moves it)."""
        base, physical = self.method.base, physical or self.physical
        if base == "bp":
            return Backprop(ideal_runner)
        if base == "bp-control":
            return Backprop(twin_runner(physical))
        if base == "nat":
            return Backprop(nat_runner(physical, self._fitted_noise(), self.noise))
        if base == "pat":
            return Backprop(pat_runner(physical))
        if base == "obp":
            return Backprop(obp_runner(physical))
        assert self.dat is not None
        return self.dat

    def _ascent_source(self) -> GradientSource:
        ascent, physical, cfg = self.method.ascent, self.physical, self.config
        if ascent == "twin":
            return Backprop(self.dat.twin_runner() if self.dat is not None else twin_runner(physical))
        if ascent == "pat":
            return self.dat if self.dat is not None else Backprop(pat_runner(physical))
        estimator: GradientEstimator
        if ascent == "fd":
            estimator = CentralDifference(h=cfg.fd_step)
        else:
            # A fresh stream per epoch (sources are rebuilt each epoch), so a resumed run draws the same directions.
            seed = cfg.seed * 100_003 + self.epoch
            estimator = SPSA(c=cfg.spsa_c, q=cfg.spsa_q, beta=cfg.spsa_beta, seed=seed)
        return DeviceEstimate(device_runner(physical), estimator, physical.nearest_allowed)

    def _fitted_noise(self) -> NoiseModel:
        """NAT's noise model (:mod:`labsat.training.nat`), built once: read and control σ as configured, or (either
        left unset) fitted to repeated forwards of the first training batch on the device; the drift term mapped
        through the twin. Its device forwards are the run's setup cost."""
        if self.noise_model is None:
            cfg = self.config
            with torch.no_grad():
                x = self.net.encode(self.dataset.train.x[: cfg.batch_size])
            theta = next(self.net.photonic_parameters()).detach()
            if cfg.noise_sigma is not None and cfg.noise_control_sigma is not None:
                model = configured_noise(
                    self.physical, x, theta, cfg.noise_sigma, cfg.noise_control_sigma, cfg.noise_drift
                )
            else:
                before = self.physical.stats()
                model = fit_noise(self.physical, x, theta, cfg.noise_repeats, cfg.noise_drift)
                self.setup_cost = _total([self.setup_cost, self.physical.stats().since(before)])
                model = replace(
                    model,
                    read_sigma=model.read_sigma if cfg.noise_sigma is None else cfg.noise_sigma,
                    control_sigma=model.control_sigma if cfg.noise_control_sigma is None else cfg.noise_control_sigma,
                )
            self.noise_model = model
        return self.noise_model

    def _validation_runner(self) -> LayerRunner:
        """The model the method trains, noiseless: ideal weights (weight-space BP), DAT's corrected twin, the twin."""
        if self.method.weight_space:
            return ideal_runner
        return self.dat.twin_runner() if self.dat is not None else twin_runner(self.physical)

    def validate(self) -> float | None:
        """Accuracy on the validation split now (None: there is none); costs no device query."""
        validation = self.dataset.validation
        if validation is None:
            return None
        return accuracy(self.net, validation, self._validation_runner())

    # -- training -------------------------------------------------------------------------------------

    def step(self, x: torch.Tensor, y: torch.Tensor, index: int) -> StepRecord:
        """One optimizer step on the batch ``(x, y)``."""
        descent, ascent = self._sources()
        before = self.physical.stats()
        if self.optimizer.fisher_due():
            self.optimizer.set_fisher(self._empirical_fisher(descent, x, y))
        if ascent is None:
            loss = descent(self.net, x, y)
            self.optimizer.first_step(zero_grad=False)  # ρ = 0 everywhere: records θ, perturbs nothing
        else:
            loss = ascent(self.net, x, y)
            if self.fd_sat is not None:  # probed at θ, before the ascent moves it
                descent = self.fd_sat.descent_source(self.net, x, y, loss)
            self.optimizer.first_step(zero_grad=True)
            self._project_controls()  # a device cannot be driven past its limits, not even to probe
            perturbed_loss = descent(self.net, x, y)
            loss = perturbed_loss if loss is None else loss
        self.optimizer.second_step(zero_grad=True)
        self._project_controls()  # the optimizer's box alone knows no power, budget or neighbour rule
        assert loss is not None
        record = StepRecord(self.epoch, index, float(loss), self.physical.stats().since(before))
        self.steps.append(record)
        return record

    def _empirical_fisher(self, descent: GradientSource, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """SSAM-F's Fisher from the first ``fisher_samples`` samples of the batch, one backward each.

        Each sample's gradient comes from the method's own descent source (on a bench: its device queries,
        counted in the step's cost), except DAT's, whose source also refits its correctors: there the
        corrected twin gives the gradients.
        """
        source = descent if self.dat is None else Backprop(self.dat.twin_runner())
        params = self.optimizer.perturbed_parameters()

        def gradients(i: int) -> list[torch.Tensor]:
            for p in params:
                p.grad = None
            source(self.net, x[i : i + 1], y[i : i + 1])
            return [torch.zeros_like(p) if p.grad is None else p.grad for p in params]

        fisher = empirical_fisher(gradients(i) for i in range(min(self.config.fisher_samples, len(x))))
        for p in params:
            p.grad = None
        return fisher

    def _set_learning_rates(self) -> None:
        """This epoch's learning rates: ``lr_schedule="cosine"`` decays them from the configured ones towards 0.

        A function of the epoch alone, so a resumed run needs no scheduler state. The decay lets the
        controls settle at the end instead of rattling around the minimum at the full step size, which on a
        Lorentzian weight (steep flanks) costs accuracy.
        """
        cfg = self.config
        factor = 0.5 * (1 + math.cos(math.pi * self.epoch / cfg.epochs)) if cfg.lr_schedule == "cosine" else 1.0
        photonic, digital = self.optimizer.param_groups
        photonic["lr"] = cfg.lr * factor
        digital["lr"] = cfg.digital_lr * factor

    def _project_controls(self) -> None:
        """Move the photonic parameters to the nearest allowed point (weights: into their box; controls: into
        the guard's allowed set), so the perturbed point is one the device accepts (second_step restores θ)."""
        with torch.no_grad():
            for theta in self.net.photonic_parameters():
                weights = self.method.weight_space
                theta.copy_(theta.clamp(*WEIGHT_RANGE) if weights else self.physical.nearest_allowed(theta))

    def run_epoch(self, on_step: StepCallback | None = None) -> list[StepRecord]:
        """One pass over the training split in a seeded random order; returns the epoch's step records."""
        started = time.perf_counter()
        self._descent = self._ascent = None  # rebuilt from the state alone: resuming here changes nothing
        self._set_learning_rates()
        train = self.dataset.train
        order = torch.randperm(len(train), generator=self.data_order)
        records = []
        for index, batch in enumerate(order.split(self.config.batch_size)):
            record = self.step(train.x[batch], train.y[batch], index)
            records.append(record)
            if on_step is not None:
                on_step(record)
        validation = self.validate()
        if validation is not None:
            self.validation_accuracy.append(validation)
        self.epoch += 1
        self.wall_s += time.perf_counter() - started
        return records

    def result(self) -> TrainResult:
        """The trained network in control space (weight-space BP is deployed through the twin here)."""
        net = self.net
        if self.method.weight_space:
            net = deploy_weights(net, self.physical, steps=self.config.deploy_steps)
        return TrainResult(
            net,
            self.config,
            list(self.steps),
            self.setup_cost,
            self.wall_s,
            list(self.validation_accuracy),
            self.noise_model,
        )

    # -- checkpoints ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.config.settings(),
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dat": None if self.dat is None else self.dat.state_dict(),
            "noise_model": None if self.noise_model is None else self.noise_model.as_dict(),
            "validation_accuracy": list(self.validation_accuracy),
            "data_order": self.data_order.get_state(),
            "noise": self.noise.get_state(),
            "steps": [s.as_dict() for s in self.steps],
            "setup_cost": asdict(self.setup_cost),
            "wall_s": self.wall_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["settings"] != self.config.settings():
            raise TrainingError("the checkpoint was written by a run with other settings; it cannot be resumed here")
        self.epoch = int(state["epoch"])
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.dat is not None:
            self.dat.load_state_dict(state["dat"])
        noise = state["noise_model"]
        self.noise_model = None if noise is None else NoiseModel.from_dict(noise)
        self.validation_accuracy = [float(a) for a in state["validation_accuracy"]]
        self.data_order.set_state(state["data_order"])
        self.noise.set_state(state["noise"])
        self.steps = [StepRecord.from_dict(s) for s in state["steps"]]
        self.setup_cost = QueryStats(**state["setup_cost"])
        self.wall_s = float(state["wall_s"])
        self._descent = self._ascent = None


def train(
    config: TrainConfig,
    physical: PhysicalLayer,
    dataset: Dataset,
    *,
    checkpoints: Path | None = None,
    resume: bool = False,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train for ``config.epochs`` epochs, checkpointing each into ``checkpoints`` (if given).

    With ``resume`` the run continues from the last checkpoint there (a finished run returns at once);
    without it any old checkpoint is overwritten by the new run.
    """
    trainer = Trainer(config, physical, dataset)
    if resume:
        if checkpoints is None:
            raise TrainingError("--resume needs a checkpoint directory")
        state = load_checkpoint(checkpoints)
        if state is not None:
            trainer.load_state_dict(state)
    while trainer.epoch < config.epochs:
        records = trainer.run_epoch(on_step)
        if checkpoints is not None:
            save_checkpoint(checkpoints, trainer.state_dict())
        if on_epoch is not None:
            on_epoch(epoch_row(trainer.epoch - 1, records, trainer.validation_accuracy))
    return trainer.result()


def _total(costs: list[QueryStats]) -> QueryStats:
    total = QueryStats()
    for cost in costs:
        total = QueryStats(
            total.forwards + cost.forwards,
            total.programs + cost.programs,
            total.samples + cost.samples,
            total.bench_time_s + cost.bench_time_s,
        )
    return total
