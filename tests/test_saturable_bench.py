"""The saturable-absorber network as a bench: its devices behind the guard, its calibration, its training.

``config/sim-saturable.yaml`` is a fourth system kind (``saturable``), registered like the others; these
tests drive it through the same bench, calibration and training paths as an MRR bank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import cli_json, cli_refusal

from labsat.bench import builtin_bench_path, open_bench
from labsat.calibration import calibrate_bench
from labsat.errors import LimitViolation
from labsat.physics.saturable import transmit
from labsat.store import Store
from labsat.truth import ground_truth

CONFIG = builtin_bench_path("sim-saturable.yaml")


def _noiseless(tmp_path: Path) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    data["simulator"]["read_noise"] = 0.0
    path = tmp_path / "noiseless.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_forward_pass_is_the_absorber_after_the_slm_weights(tmp_path: Path) -> None:
    with open_bench(_noiseless(tmp_path), torch_device=torch.device("cpu")) as bench:
        truth = ground_truth(bench.shared)
        assert truth is not None and truth.truth.alpha0 == 10.0 and truth.truth.i_sat == 1.3
        generator = torch.Generator().manual_seed(0)
        weights = 2 * torch.rand(10, 64, generator=generator) - 1
        x = torch.rand(6, 64, generator=generator) * 2
        y = bench.system.forward(x, weights)
    shown_w = torch.round(weights * 127) / 127  # the SLM's levels: weight w is gray 127 + 127 w
    shown_x = torch.round(x / 3.0 * 255) / 255 * 3.0  # the input SLM's levels over its full scale 3
    assert y.shape == (6, 10)
    assert torch.allclose(y, transmit(shown_x @ shown_w.T, 10.0, 1.3), atol=1e-5)


def test_the_weight_slm_is_behind_the_guard() -> None:
    with open_bench(CONFIG, torch_device=torch.device("cpu")) as bench:
        slm = bench.slms["weights"]
        chip = ground_truth(bench.shared)
        before = chip._weights.clone()  # type: ignore[union-attr]
        frame = np.full((16, 64), 127, dtype=np.uint8)
        frame[3, 5] = 255  # weight > 1: outside the bench file's gray limits [0, 254]
        with pytest.raises(LimitViolation, match=r"weights.*255"):
            slm.show(frame)
        assert torch.equal(chip._weights, before)  # type: ignore[union-attr]  # refused whole: nothing shown
        with pytest.raises(ValueError, match=r"\(17, 64\) layer does not fit this 16x64 saturable"):
            bench.system.forward(torch.rand(2, 64), torch.zeros(17, 64))
        bench.system.forward(torch.rand(2, 64), torch.ones(16, 64))
        assert bool((chip._weights == 254).all())  # type: ignore[union-attr]
    # closing the bench is its safe state: every weight zero (gray 127), the input dark
    assert bool((chip._weights == 127).all()) and bool((chip._input == 0).all())  # type: ignore[union-attr]


def test_calibration_recovers_the_simulated_absorber(tmp_path: Path) -> None:
    with open_bench(CONFIG, torch_device=torch.device("cpu")) as bench:
        record = calibrate_bench(bench, Store(tmp_path))
        truth = ground_truth(bench.shared)
    assert truth is not None and record.kind == "saturable"
    assert abs(record.alpha0 - truth.truth.alpha0) < 0.02 * truth.truth.alpha0  # type: ignore[union-attr]
    assert abs(record.i_sat - truth.truth.i_sat) < 0.02 * truth.truth.i_sat  # type: ignore[union-attr]
    assert record.fit_rms < 0.1 * record.nominal_rms  # type: ignore[union-attr]  # the bench file's 8.0 is wrong


def test_labsat_calibrate_train_and_evaluate_drive_the_absorber_bench(tmp_path: Path) -> None:
    bench = ["--bench", str(CONFIG), "--data-dir", str(tmp_path)]
    calibrated = cli_json("calibrate", *bench, "--absorber-levels", "17")
    assert calibrated["kind"] == "saturable" and calibrated["options"]["levels"] == 17
    trained = cli_json("train", *bench, "--dataset", "digits", "--method", "pat", "--epochs", "2", "--seed", "1")
    assert trained["calibration"] == calibrated["id"] and trained["test_accuracy_device"] > 0.6  # chance: 0.1
    assert abs(trained["test_accuracy_device"] - trained["test_accuracy_twin"]) < 0.1
    evaluated = cli_json("evaluate", *bench, "-m", trained["model"])
    (model,) = evaluated["models"]
    assert model["device_accuracy"] == pytest.approx(trained["test_accuracy_device"], abs=0.05)
    wide = cli_refusal("train", *bench, "--dataset", "digits", "--hidden", "32")
    assert "a (32, 64) layer does not fit the 16x64 saturable-absorber layer of bench 'sim-saturable'" in wide
