"""The SAT work's MRR setting: LeNet-5 with photonic fc2 and fc3 on the reduced Lorentzian model, drift on those only.

Usage: ``python benchmarks/bench_paper_mrr.py [--data digits|IDX_DIR] [--seeds 3] [--epochs 900] [--rhos 0.5,1]``

Per seed (the seed fixes the train/test split, the validation split held out of training, the initialisation
and the batches): BP in weight space, control-space training (ρ = 0) and SAT on the detunings with each ρ of
``--rhos``. SAT's ρ is chosen per seed on the validation split (mean validation accuracy over the drift range
:data:`labsat.evaluation.sweeps.DRIFT_RANGE_K`); the test split is used once, for the reported numbers. Sharpness
is the algebraic λmax / λmin (Lanczos) and the trace (Hutchinson) of the test loss's Hessian in the detunings
of fc2 and fc3 (nm⁻²). Writes its section of benchmarks/RESULTS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date

import torch
from results import add_write_option, mean_std, publish

from labsat.datasets import load_dataset
from labsat.evaluation.hessian import Sharpness, sharpness
from labsat.evaluation.sweeps import DRIFT_RANGE_K
from labsat.physics.lorentzian import DRIFT_NM_PER_K, GAMMA_NM
from labsat.training.paper_mrr import (
    PaperConfig,
    accuracy,
    control_loss,
    drift_accuracies,
    flat_controls,
    train,
)

SHOWN_K = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
"""The columns of the table: points of the one drift range every report uses."""

VALIDATION_FRACTION = 0.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits, or a directory of MNIST-format IDX files")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=900)
    parser.add_argument("--rhos", default="0.5,1", help="SAT's ρ candidates, chosen on the validation split")
    add_write_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rhos = [float(r) for r in args.rhos.split(",")]
    seeds = list(range(args.seeds))
    accuracies: dict[str, list[list[float]]] = {"bp": [], "control": [], "sat": []}
    sharp: dict[str, list[Sharpness]] = {name: [] for name in accuracies}
    chosen: list[float] = []
    started = time.perf_counter()
    n_test = 0
    for seed in seeds:
        dataset = load_dataset(args.data, seed=seed).with_validation(VALIDATION_FRACTION, seed)
        assert dataset.validation is not None
        n_test = len(dataset.test)
        candidates = {"bp": [PaperConfig("bp", epochs=args.epochs, seed=seed)]}
        candidates["control"] = [PaperConfig("control", epochs=args.epochs, seed=seed)]
        candidates["sat"] = [PaperConfig("sat", epochs=args.epochs, rho=rho, seed=seed) for rho in rhos]
        for name, configs in candidates.items():
            trained = [(train(dataset, config), config) for config in configs]
            net, config = max(
                trained, key=lambda pair: statistics.mean(drift_accuracies(pair[0], dataset.validation, DRIFT_RANGE_K))
            )
            if name == "sat":
                chosen.append(config.rho)
            accuracies[name].append(drift_accuracies(net, dataset.test, SHOWN_K))
            sharp[name].append(sharpness(control_loss(net, dataset.test), flat_controls(net), probes=50, seed=seed))
            print(
                f"seed {seed} {name}{f' (ρ {config.rho:g})' if name == 'sat' else ''}: "
                f"clean {100 * accuracy(net, dataset.test):.1f} %, "
                f"−2 K {100 * accuracies[name][-1][0]:.1f} %, λmax {sharp[name][-1].lambda_max:.3g}",
                file=sys.stderr,
                flush=True,
            )
    total = time.perf_counter() - started
    publish("bench_paper_mrr", _section(args, seeds, n_test, accuracies, sharp, chosen, total), args)


def _section(
    args: argparse.Namespace,
    seeds: list[int],
    n_test: int,
    accuracies: dict[str, list[list[float]]],
    sharp: dict[str, list[Sharpness]],
    chosen: list[float],
    total: float,
) -> str:
    labels = {
        "bp": "BP (weight space, SGD)",
        "control": "control space, ρ = 0",
        "sat": "SAT (adaptive, ρ on validation)",
    }
    lines = [
        f"## The SAT paper's MRR setting: LeNet-5, photonic fc2 + fc3 (`bench_paper_mrr.py`, {date.today()}, "
        f"nproc {os.cpu_count()})",
        "",
        f"`python benchmarks/bench_paper_mrr.py --data {args.data} --seeds {args.seeds} --epochs {args.epochs} "
        f"--rhos {args.rhos}` — {total / 60:.1f} min.",
        "",
        f"Reduced model w = 1 − 2/(1 + (V/γ)²), γ = {GAMMA_NM} nm; drift V → V + {DRIFT_NM_PER_K}·ΔT nm on fc2 and fc3 "
        f"only; conv1, conv2, fc1 and BatchNorm digital. The paper's optimizers: BP SGD lr 10⁻³ momentum 0.5, control "
        f"space and SAT Adam lr 0.01; batch 64, {args.epochs} epochs, "
        f"{VALIDATION_FRACTION:.0%} of the training split held out for validation. Test accuracy (%, mean ± std over "
        f"{len(seeds)} seeds, full test split of {n_test} images; chance 10 %) vs uniform ΔT:",
        "",
        "| method | " + " | ".join(f"{t:+g} K" for t in SHOWN_K) + " |",
        "|---|" + "---:|" * len(SHOWN_K),
    ]
    for name, rows in accuracies.items():
        lines.append(
            f"| {labels[name]} | " + " | ".join(mean_std([r[i] for r in rows]) for i in range(len(SHOWN_K))) + " |"
        )
    lines += [
        "",
        f"SAT's ρ chosen on validation per seed: {', '.join(f'{r:g}' for r in chosen)}.",
        "",
        "Sharpness of the test loss in the detunings of fc2 and fc3 (nm⁻²; algebraic Lanczos extremes, Hutchinson "
        "trace with 50 probes; mean ± std over seeds):",
        "",
        "| method | λmax | λmin | trace |",
        "|---|---:|---:|---:|",
    ]
    for name, values in sharp.items():
        cells = [[getattr(s, key) for s in values] for key in ("lambda_max", "lambda_min", "trace")]
        lines.append(f"| {labels[name]} | " + " | ".join(mean_std(c, scale=1.0, digits=3) for c in cells) + " |")
    ratio = statistics.mean(s.lambda_max for s in sharp["bp"]) / statistics.mean(s.lambda_max for s in sharp["sat"])
    lines += ["", f"λmax(BP) / λmax(SAT) = {ratio:.3g} (means over seeds)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
