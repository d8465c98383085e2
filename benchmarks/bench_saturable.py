"""Optical backprop through saturable absorbers vs exact-gradient training of the same network.

Usage: ``python benchmarks/bench_saturable.py [--seeds 5] [--epochs 30] [--alphas 10,1,30] [--no-write]``

Digits (64 pixels as input fields in [0, 1]) → SLM MVM 64→32 + absorber → digital normalise/affine/ReLU
→ SLM MVM 32→10 + absorber → normalise/affine → logits (:class:`PhotonicNet` over
:func:`saturable_physical_layer`). The simulated device has 1 % detector noise on every read-out and an
8-bit SLM. Per optical depth α0 and seed, the same network from the same start is trained twice:

* ``obp``: pump pass forward, probe pass backward, both on the device (no model of the absorber);
* ``pat`` through the device's exact noiseless physics: the same measured forward pass, the exact chain
  rule backward. The two differ only in the backward through the absorber (plus the probe pass's read-out
  noise), which isolates the pump–probe approximation; in-silico ``bp-control`` through the exact model is
  shown at the first α0 for reference (it never sees the device's noise during training).

Accuracy on the full 450-image test split, on the device (noisy read-outs). "probe/exact" is the mean of
``1/(1 + α0·s/(1+s)²)`` over every absorber and test image of the trained ``obp`` networks; "cos" is the
cosine between the optical and the exact gradient of all SLM weights at the initial network on a noiseless
device (2 × 256 training images). Rewrites its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

import torch
import torch.nn.functional as F
from results import add_write_option, mean_std, publish
from torch import Tensor

from labsat.datasets import Dataset, load_dataset
from labsat.physics.saturable import approximation_ratio, saturation
from labsat.simulators.saturable import SaturableLayerSimulator, SaturableSimConfig
from labsat.training.config import TrainConfig
from labsat.training.evaluate import accuracy, predict
from labsat.training.loop import Trainer, train
from labsat.training.network import LayerRunner, PhotonicNet
from labsat.training.optical_backprop import obp_runner
from labsat.training.physical import PhysicalLayer
from labsat.training.runners import device_runner, twin_runner
from labsat.training.saturable import saturable_physical_layer

LABELS = {"obp": "optical backprop (obp)", "pat": "exact gradient (PAT, true physics)", "bp-control": "in-silico BP"}


def _config(method: str, seed: int, epochs: int) -> TrainConfig:
    return TrainConfig(method=method, epochs=epochs, batch_size=32, hidden=(32,), lr=0.01, digital_lr=0.01, seed=seed)


def _physical(alpha0: float, seed: int, **changes: float | None) -> tuple[PhysicalLayer, SaturableLayerSimulator]:
    device = SaturableLayerSimulator(SaturableSimConfig(alpha0=alpha0, **changes), seed=seed)
    return saturable_physical_layer(device), device


def mean_ratio(net: PhotonicNet, device: SaturableLayerSimulator, x: Tensor) -> float:
    """Mean probe/exact ratio over every absorber the test images drive, in the device's noiseless physics."""
    ratios: list[Tensor] = []

    def run(index: int, h: Tensor, theta: Tensor) -> Tensor:
        s = saturation(h @ device.displayed(theta).T, device.config.i_sat)
        ratios.append(approximation_ratio(s, device.config.alpha0).reshape(-1))
        return device.exact_layer(h, theta)

    predict(net, x, run)
    return float(torch.cat(ratios).mean())


def gradient_cosine(alpha0: float, dataset: Dataset, epochs: int) -> float:
    """Cosine between the optical and the exact gradient of all SLM weights at the seed-0 start, noiselessly."""
    physical, _ = _physical(alpha0, 0, read_noise=0.0)
    net = Trainer(_config("obp", 0, epochs), physical, dataset).net
    x, y = dataset.train.x[:256], dataset.train.y[:256]

    def gradient(run: LayerRunner) -> Tensor:
        net.zero_grad()
        F.cross_entropy(net(x, run), y).backward()
        return torch.cat([theta.grad.reshape(-1) for theta in net.photonic_parameters()])

    return float(F.cosine_similarity(gradient(obp_runner(physical)), gradient(twin_runner(physical)), dim=0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--alphas", default="10,1,30", help="optical depths α0; the first also runs in-silico BP")
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    dataset = load_dataset("digits")
    alphas = [float(a) for a in args.alphas.split(",")]
    rows = []
    for position, alpha0 in enumerate(alphas):
        methods = ("obp", "pat", "bp-control") if position == 0 else ("obp", "pat")
        acc: dict[str, list[float]] = {m: [] for m in methods}
        wall: dict[str, list[float]] = {m: [] for m in methods}
        passes: dict[str, int] = {}
        ratios = []
        for seed in range(args.seeds):
            for method in methods:
                physical, device = _physical(alpha0, seed)
                result = train(_config(method, seed, args.epochs), physical, dataset)
                acc[method].append(accuracy(result.net, dataset.test, device_runner(physical)))
                wall[method].append(result.wall_s)
                passes[method] = result.cost.forwards
                if method == "obp":
                    ratios.append(mean_ratio(result.net, device, dataset.test.x))
                print(f"α0 {alpha0:g} seed {seed} {method}: {100 * acc[method][-1]:.1f} %", flush=True)
        gap = [a - b for a, b in zip(acc["obp"], acc["pat"], strict=True)]
        cosine = gradient_cosine(alpha0, dataset, args.epochs)
        for method in methods:
            extra = "— | — | —"
            if method == "obp":
                extra = f"{mean_std(gap)} | {statistics.mean(ratios):.2f} | {cosine:.3f}"
            rows.append(
                f"| {alpha0:g} | {LABELS[method]} | {mean_std(acc[method])} | {extra} | "
                f"{statistics.mean(wall[method]):.1f} | {passes[method]} |"
            )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "## Saturable-absorber network: optical backprop vs exact gradient",
        "",
        f"`python benchmarks/bench_saturable.py --seeds {args.seeds} --epochs {args.epochs} --alphas {args.alphas}` "
        f"— {stamp}, nproc {os.cpu_count()}, CPU, 1 thread, wall {time.perf_counter() - started:.0f} s. "
        "Digits, SLM MVM + saturable absorber layers 64→32→10 with digital normalise/affine/ReLU between "
        "(I_sat = 1, 1 % read noise on every read-out, 8-bit SLM), batch 32, Adam lr 0.01 cosine; accuracy on the "
        f"full 450-image test split on the device, mean ± std over {args.seeds} seeds. Δ = obp − exact per seed. "
        "The exact reference is PAT through the device's true physics: same measured forward, exact chain rule "
        "backward, so Δ is the pump–probe approximation alone. probe/exact: mean 1/(1+α0·s/(1+s)²) over the "
        "trained obp networks' absorbers on the test set; cos: cosine of obp and exact SLM-weight gradients at "
        "the start (noiseless). Wall: training seconds per run; passes: device passes per run (obp: pump + probe).",
        "",
        "| α0 | method | accuracy (%) | Δ vs exact (points) | probe/exact | cos | wall (s) | passes |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])  # fmt: skip
    publish("bench_saturable", body, args)


if __name__ == "__main__":
    main()
