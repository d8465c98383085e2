"""``labsat calibrate``, ``train`` and ``evaluate`` (and their jobs) on a D2NN bench.

The reference bench shrunk to a 32-px grid (``small_d2nn``, the same 256 µm aperture) and a LUT fit that
measures every fourth gray level keep a calibration to a second or two and an epoch on the digits to a few.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import cli_json, cli_refusal
from fastapi.testclient import TestClient
from service_helpers import auth, token_table, wait_for
from test_d2nn_system import CPU, chip_of, small_d2nn

from labsat.api.app import create_app
from labsat.api.auth import Scope
from labsat.bench import open_bench
from labsat.calibration import D2NNCalibrationOptions, D2NNCalibrationRecord, calibrate_bench
from labsat.calibration.slm_lut import LUTCalibration
from labsat.datasets import load_dataset
from labsat.errors import LabsatError
from labsat.jobs.engine import JobEngine
from labsat.physics.slm import PhaseLUT
from labsat.readout import QueryStats
from labsat.store import Store, new_id, record_from_stored, utcnow
from labsat.systems.d2nn import D2NNSystem
from labsat.training import session
from labsat.training.config import TrainConfig
from labsat.training.diffractive import d2nn_network, diffractive_physical_layer
from labsat.training.session import load_model

BENCH = "small-d2nn"
QUICK = D2NNCalibrationOptions(step=4, repeats=2)
"""65 gray levels per mask and split, two readings each: 260 programs, the LUTs still within 0.03 rad."""
QUICK_FLAGS = ["--lut-step", "4", "--lut-repeats", "2"]
TRAIN_FLAGS = ["--lr", "0.1", "--batch-size", "32", "--epochs", "1"]
"""The digits on the 32-px D2NN: about 70 % on the device after one epoch (85 % after two; chance: 10 %)."""


@pytest.fixture
def d2nn_bench(tmp_path: Path) -> Path:
    """config/sim-d2nn.yaml on a 32-px grid of 8 µm pixels (its SLM LUTs, flicker and detector noise kept)."""
    data = small_d2nn()
    data["name"] = BENCH
    path = tmp_path / "d2nn32.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_d2nn_calibration_survives_a_restart_of_the_store(d2nn_bench: Path, data_dir: Path) -> None:
    with open_bench(d2nn_bench, data_dir=data_dir, torch_device=CPU) as bench:
        system = bench.system
        assert isinstance(system, D2NNSystem)
        luts = [PhaseLUT.power_law(5.9, 1.2), PhaseLUT.power_law(6.1, 0.9)]
        fit = LUTCalibration(luts, [0.02, 0.03], QueryStats(programs=260, samples=520, bench_time_s=31.8))
        now = utcnow()
        record = D2NNCalibrationRecord.from_calibration(
            (fit, system), id=new_id(), bench=BENCH, bench_identity="abc", created=now, finished=now, options=QUICK
        )
        Store(data_dir).save_calibration(record)
        reopened = Store(data_dir)  # what the next process sees
        loaded = reopened.get_calibration(record.id)
        assert isinstance(loaded, D2NNCalibrationRecord) and loaded == record
        assert [(r.id, r.kind, r.procedures) for r in reopened.list_calibrations(BENCH)] == [
            (record.id, "d2nn", ["slm_luts"])
        ]
        for restored, original in zip(loaded.luts(), luts, strict=True):
            assert torch.equal(restored.phase, original.phase)
        nominal = PhaseLUT.linear(system.spec.lut_phase_range_rad)
        assert loaded.figures()["lut_rms_vs_nominal"] == [lut.rms_difference(nominal) for lut in luts]
        assert loaded.figures()["fit_residual"] == [0.02, 0.03]
        assert loaded.cost.programs == 260 and loaded.options == QUICK
        # The LUTs replace the System's, not compose with them: applying twice is applying once.
        loaded.apply(system)
        loaded.apply(system)
        assert [torch.equal(a.phase, b.phase) for a, b in zip(system.luts, luts, strict=True)] == [True, True]
    newer = {**record.model_dump(mode="json"), "version": 2}
    with pytest.raises(LabsatError, match=r"D2NN LUT calibration .* has record version 2"):
        record_from_stored(newer)


def test_labsat_calibrate_fits_luts_closer_to_the_slms_than_the_nominal_one(d2nn_bench: Path, data_dir: Path) -> None:
    summary = cli_json("calibrate", "--bench", str(d2nn_bench), *QUICK_FLAGS)
    levels = len({*range(0, 256, 4), 255})
    assert summary["kind"] == "d2nn" and summary["bench"] == BENCH and summary["masks"] == ["mask1", "mask2"]
    assert summary["cost"]["programs"] == 2 * 2 * levels  # two masks, two split orientations
    assert all(rms > 0.1 for rms in summary["lut_rms_vs_nominal"])  # the SLMs are off the nominal table
    assert all(residual < 0.1 for residual in summary["fit_residual"])

    record = Store(data_dir).get_calibration(summary["id"])
    assert isinstance(record, D2NNCalibrationRecord)
    with open_bench(d2nn_bench, data_dir=data_dir, torch_device=CPU) as bench:
        truth = chip_of(bench).luts
        nominal = bench.system.nominal_luts()
    for fitted, true, design in zip(record.luts(), truth, nominal, strict=True):
        assert fitted.rms_difference(true) < 0.03 < 0.1 < design.rms_difference(true)

    listed = cli_json("calibrations", "--bench", str(d2nn_bench))["calibrations"]
    assert [(row["id"], row["kind"], row["procedures"]) for row in listed] == [(record.id, "d2nn", ["slm_luts"])]
    shown = cli_json("calibrations", record.id)
    assert shown["parameters"]["luts"]["mask2"] == record.masks[1].phase and len(record.masks[1].phase) == 256
    compared = cli_json("calibrations", record.id, record.id)["parameters"]
    assert [item["name"] for item in compared] == ["luts.mask1", "luts.mask2"]
    assert all(item["count"] == 256 and item["max_abs"] == 0 for item in compared)


def test_labsat_train_calibrates_trains_and_evaluate_reloads_the_d2nn_model(
    d2nn_bench: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        session, "calibrate_bench", lambda bench, store, **kw: calibrate_bench(bench, store, d2nn=QUICK)
    )
    fd_sat = ("--fd-disturbance", "rotation", "--fd-two-sided", "--fd-delta-max", "0.5")
    args = ("train", "--bench", str(d2nn_bench), "--method", "sat", *fd_sat, *TRAIN_FLAGS)
    trained = cli_json(*args)
    assert trained["calibrated_now"] is True  # no calibration yet: the LUT fit ran first and was stored
    assert trained["test_accuracy_device"] > 0.5  # ten classes: chance is 0.1
    assert abs(trained["test_accuracy_device"] - trained["test_accuracy_twin"]) < 0.05
    assert trained["queries"]["forwards"] == 0  # SAT with FD-SAT, probe and descent on the twin
    settings = trained["settings"]
    assert (settings["fd_disturbance"], settings["fd_two_sided"], settings["fd_delta_max"]) == ("rotation", True, 0.5)
    assert (settings["hidden"], settings["encoder"]) == ([], None)

    store = Store(data_dir)
    net, metadata = load_model(store, trained["model"])
    assert net.sizes == (64, 10) and tuple(net.theta[0].shape) == (2, 32, 32)  # one phase per mask pixel
    assert metadata["system"] == "d2nn" and metadata["calibration"] == trained["calibration"]
    record = store.get_calibration(trained["calibration"])
    assert isinstance(record, D2NNCalibrationRecord) and record.options == QUICK
    with open_bench(d2nn_bench, data_dir=data_dir, torch_device=CPU) as bench:
        # The bench as training saw it: the device through the stored LUTs agrees with the nominal twin, and
        # closer than through the bench file's nominal LUTs.
        physical, _, calibrated_now = session.bench_layer(bench, store, 10, record.id)
        assert calibrated_now is False
        x, theta = load_dataset("digits").test.x, net.theta[0].detach()
        modelled = physical.twin_layer(x, theta)
        error = {}
        for name, luts in (("calibrated", bench.system.luts), ("nominal", bench.system.nominal_luts())):
            bench.system.use_luts(luts)
            error[name] = float((physical.system_forward(x, theta) - modelled).square().mean().sqrt())
        assert error["calibrated"] < 0.5 * error["nominal"]  # measured: 2.4e-4 vs 1.2e-3 RMS

    result = cli_json("evaluate", "--bench", str(d2nn_bench), "-m", trained["model"])
    (model,) = result["models"]
    assert model["accuracy"] == trained["test_accuracy_twin"]  # the same twin and LUTs, rebuilt from the store
    assert abs(model["device_accuracy"] - trained["test_accuracy_device"]) <= 0.03  # flicker and read noise
    sweep = model["sweeps"]["misalignment"]
    assert sweep["unit"] == "deg" and sweep["values"] == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert sweep["mean"][2] == model["accuracy"]  # unrotated: the twin's accuracy
    assert min(sweep["mean"]) < model["accuracy"]  # rotated masks cost accuracy
    assert "not run on a 2-mask D2NN: drift sweep, noise sweep, transfer sweep, sharpness" in model["notes"][0]
    assert Path(result["report"]).is_file()


def test_refusals_name_the_bench_and_the_reason(d2nn_bench: Path) -> None:
    bench = str(d2nn_bench)
    only = cli_refusal("calibrate", "--bench", bench, "--only", "rings")
    assert f"--only: for an MRR bank's calibration procedures only; bench '{BENCH}' is a 2-mask D2NN" in only
    assert "calibrated by a D2NN's SLM LUT fit (its options: --lut-*)" in only
    mesh = cli_refusal("calibrate", "--bench", bench, "--mesh-settings", "20")
    assert f"--mesh-*: for an MZI mesh's fit only; bench '{BENCH}'" in mesh
    lut_on_bank = cli_refusal("calibrate", "--lut-step", "4")
    assert "--lut-*: for a D2NN's SLM LUT fit only; bench 'sim-mrr' is a 8x8 bank" in lut_on_bank

    bp = cli_refusal("train", "--bench", bench, "--method", "bp")
    assert "a D2NN's layer is the light its phase masks steer onto ten detectors, not a weight matrix" in bp
    iris = cli_refusal("train", "--bench", bench, "--dataset", "iris")
    assert "a 2-mask D2NN shows each sample as an image on its 8×8 input SLM: the dataset needs 64 features" in iris
    pat = cli_refusal("train", "--bench", bench, "--method", "pat+sat", "--fd-disturbance", "rotation")
    assert "FD-SAT with pat+sat (ascent pat) measures the 2-mask D2NN with its masks moved" in pat
    assert "train FD-SAT in silico on the calibrated twin (method sat or nat+sat, ascent twin)" in pat
    assert "unknown FD-SAT disturbance 'tilt' (known: rotation, shift_x" in cli_refusal(
        "train", "--bench", bench, "--method", "sat", "--fd-disturbance", "tilt"
    )
    assert "--fd-delta-max: Input should be greater than 0" in cli_refusal(
        "train", "--bench", bench, "--method", "sat", "--fd-disturbance", "rotation", "--fd-delta-max", "0"
    )
    bank = cli_refusal("train", "--method", "sat", "--fd-disturbance", "rotation")
    assert "cannot train against that on bench 'sim-mrr': it is a 8x8 bank, whose disturbances are drift" in bank
    assert Store().list_calibrations() == []  # every refusal came before any calibration or device time

    with open_bench(d2nn_bench, torch_device=CPU) as opened:
        system = opened.system
        assert isinstance(system, D2NNSystem)
        with pytest.raises(LabsatError, match="reads at most 10 classes"):
            d2nn_network(TrainConfig(method="sat"), system, 64, 12)
        with pytest.raises(LabsatError, match="it has no digital encoder"):
            d2nn_network(TrainConfig(method="sat", encoder=16), system, 64, 10)
        # Fewer classes than detectors: the first ones are read.
        config = d2nn_network(TrainConfig(method="pat+sat"), system, 64, 3)
        assert config.hidden == () and not config.adaptive  # no "peak" to scale SAT from in phase
        twin = system.nominal_twin()
        layer = diffractive_physical_layer(twin, outputs=3)
        controls = torch.rand(system.control_shape, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
        x = torch.rand(4, 64, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(layer.twin_layer(x, controls), twin.layer(x, controls)[:, :3])
        assert layer.control_shape is not None and layer.control_shape(3, 64) == system.control_shape


def test_the_rest_jobs_calibrate_train_deploy_and_evaluate_on_a_d2nn(d2nn_bench: Path, data_dir: Path) -> None:
    engine = JobEngine(Store(data_dir), [d2nn_bench], progress_interval=0.05)
    with TestClient(create_app(engine, token_table())) as client:

        def submit(kind: str, params: dict[str, Any]) -> Any:
            return client.post("/api/jobs", json={"kind": kind, "params": params}, headers=auth(Scope.OPERATE))

        def run(kind: str, params: dict[str, Any]) -> dict[str, Any]:
            submitted = submit(kind, params)
            assert submitted.status_code == 201, submitted.text
            url = f"/api/jobs/{submitted.json()['id']}"
            final = ("succeeded", "failed", "cancelled")
            return wait_for(
                lambda: (job := client.get(url, headers=auth(Scope.READ)).json())["state"] in final and job,
                what=f"the {kind} job",
            )

        refused = run("calibrate", {"mesh": {"settings": 20}})
        assert refused["state"] == "failed"
        assert f"mesh: for an MZI mesh's fit only; bench '{BENCH}' is a 2-mask D2NN" in refused["error"]
        fd_on_device = run("train", {"method": "pat+sat", "fd_disturbance": "rotation", "epochs": 1})
        assert fd_on_device["state"] == "failed" and "nothing on a bench can turn" in fd_on_device["error"]
        assert submit("train", {"method": "sat", "fd_disturbance": "tilt"}).status_code == 422
        assert client.get("/api/calibrations", headers=auth(Scope.READ)).json() == []  # refused before calibrating

        calibrated = run("calibrate", {"d2nn": QUICK.model_dump()})
        assert calibrated["state"] == "succeeded", calibrated["error"]
        assert calibrated["result"]["procedures"] == ["slm_luts"]
        assert all(rms > 0.1 for rms in calibrated["result"]["lut_rms_vs_nominal"])
        trained = run("train", {"method": "pat+sat", "epochs": 1, "lr": 0.1, "batch_size": 64})
        assert trained["state"] == "succeeded", trained["error"]
        assert trained["result"]["calibration"] == calibrated["result"]["calibration"]
        assert trained["result"]["queries"]["forwards"] == 2 * trained["result"]["steps"]  # PAT+SAT on the device
        assert trained["result"]["test_accuracy_device"] > 0.3
        deployed = run("deploy", {"model": trained["result"]["model"]})
        assert deployed["state"] == "succeeded", deployed["error"]
        assert deployed["result"]["queries"]["forwards"] == 1  # the whole test split through the masks at once
        trained_accuracy = trained["result"]["test_accuracy_device"]
        assert abs(deployed["result"]["test_accuracy_device"] - trained_accuracy) <= 0.03  # noise only
        evaluated = run("evaluate", {"models": [trained["result"]["model"]], "sweeps": ["misalignment"]})
        assert evaluated["state"] == "succeeded", evaluated["error"]
        (model,) = evaluated["result"]["models"]
        assert model["sweeps"]["misalignment"]["values"][2] == 0.0 and len(model["notes"]) == 2

        listed = client.get("/api/calibrations", headers=auth(Scope.READ)).json()
        assert [(row["kind"], row["procedures"]) for row in listed] == [("d2nn", ["slm_luts"])]
        slms = [
            d for d in client.get(f"/api/benches/{BENCH}", headers=auth(Scope.READ)).json()["devices"] if d["frame"]
        ]
        assert [slm["name"] for slm in slms] == ["input", "mask1", "mask2"]  # the dashboard draws each frame
        for slm in slms:
            pixels = np.array(slm["frame"]["preview"])
            assert pixels.shape == tuple(min(side, 32) for side in slm["frame"]["shape"])
            assert abs(pixels.mean() - slm["frame"]["present_mean_gray"]) < 0.1
        record = client.get(f"/api/calibrations/{listed[0]['id']}", headers=auth(Scope.READ)).json()
        assert record["kind"] == "d2nn" and [len(mask["phase"]) for mask in record["masks"]] == [256, 256]
