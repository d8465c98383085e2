"""``labsat calibrate``, ``train`` and ``evaluate`` (and their jobs) on an MZI mesh bench.

A 4-mode mesh of device A's error class (12 heaters) and a short fit keep every calibration to a second or
two; iris (3 classes) fits on its first modes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from cli_helpers import cli_json, cli_refusal
from fastapi.testclient import TestClient
from service_helpers import auth, token_table, wait_for

from labsat.api.app import create_app
from labsat.api.auth import Scope
from labsat.bench import open_bench
from labsat.calibration import MeshCalibrationOptions, MeshCalibrationRecord, calibrate_bench
from labsat.calibration.mzi import calibrate_mesh
from labsat.jobs.engine import JobEngine
from labsat.physics.mzi import TENSOR_FIELDS
from labsat.store import Store, new_id, record_from_stored, utcnow
from labsat.training import session
from labsat.training.session import load_model
from labsat.truth import SIMULATED_CHIP

ROOT = Path(__file__).parents[1]
BENCH = "sim-mzi-4"
QUICK = MeshCalibrationOptions(settings=30, holdout=10, random_inputs=4, steps=300)
"""A short fit of the 4-mode mesh: its holdout RMS is still a tenth of the design's."""
QUICK_FLAGS = ["--mesh-settings", "30", "--mesh-holdout", "10", "--mesh-steps", "300"]
TRAIN_FLAGS = ["--lr", "0.1", "--batch-size", "16"]
"""Iris on 4 phases: 140 steps in 20 epochs at these settings (seed 0: well above chance)."""
CPU = torch.device("cpu")


@pytest.fixture
def mesh_bench(tmp_path: Path) -> Path:
    """config/sim-mzi.yaml cut down to 4 modes (device A's error class, 12 heaters)."""
    data = yaml.safe_load((ROOT / "config" / "sim-mzi.yaml").read_text())
    data["name"] = BENCH
    data["devices"]["heaters"]["channels"]["count"] = 12
    data["devices"]["modulators"]["channels"]["count"] = 4
    data["devices"]["detectors"]["channels"]["count"] = 4
    data["system"]["modes"] = 4
    path = tmp_path / "mesh4.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _wrapped_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double() + math.pi).remainder(2 * math.pi) - math.pi).square().mean().sqrt())


def test_a_mesh_calibration_survives_a_restart_of_the_store(mesh_bench: Path, data_dir: Path) -> None:
    with open_bench(mesh_bench, data_dir=data_dir, torch_device=CPU) as bench:
        fit = calibrate_mesh(bench.system, **QUICK.model_dump())
        now = utcnow()
        record = MeshCalibrationRecord.from_calibration(
            fit, id=new_id(), bench=BENCH, bench_identity="abc", created=now, finished=now, options=QUICK
        )
        Store(data_dir).save_calibration(record)
        reopened = Store(data_dir)  # what the next process sees
        loaded = reopened.get_calibration(record.id)
        assert isinstance(loaded, MeshCalibrationRecord) and loaded == record
        assert [r.id for r in reopened.list_calibrations(BENCH)] == [record.id]
        restored = loaded.calibration()
        for name in TENSOR_FIELDS:
            assert torch.equal(getattr(restored.params, name), getattr(fit.params, name)), name
        assert torch.equal(restored.modulator_ratio, fit.modulator_ratio)
        assert torch.equal(restored.detector_gain, fit.detector_gain)
        assert (restored.holdout_rms, restored.cost) == (fit.holdout_rms, fit.cost)
        # The readout is set from the nominal one: applying twice is applying once.
        restored.apply(bench.system)
        once = bench.system.readout.modulator_v_pi.clone()
        restored.apply(bench.system)
        assert torch.equal(bench.system.readout.modulator_v_pi, once)
        assert not torch.equal(once, bench.system.nominal_readout().modulator_v_pi)
    # A bank's record stored before records had a kind still loads as a bank's.
    legacy = {"version": 1, "id": "old", "bench": "b", "bench_identity": "x", "created": now.isoformat()}
    assert record_from_stored({**legacy, "rows": 2, "cols": 2}).kind == "mrr_bank"


def test_labsat_calibrate_fits_the_mesh_closer_to_the_chip_than_the_design(mesh_bench: Path, data_dir: Path) -> None:
    summary = cli_json("calibrate", "--bench", str(mesh_bench), *QUICK_FLAGS)
    assert summary["kind"] == "mzi_mesh" and summary["bench"] == BENCH and summary["cost"]["programs"] == 40
    assert summary["holdout_rms"] < 0.2 * summary["design_holdout_rms"]

    record = Store(data_dir).get_calibration(summary["id"])
    assert isinstance(record, MeshCalibrationRecord)
    with open_bench(mesh_bench, data_dir=data_dir, torch_device=CPU) as bench:
        truth = bench.shared[SIMULATED_CHIP].truth
    fitted = record.calibration().params
    for name in ("theta_offset", "phi_offset"):  # the design has none: its error is the chip's whole offset
        design_error = _wrapped_rms(torch.zeros_like(getattr(truth, name)), getattr(truth, name))
        assert _wrapped_rms(getattr(fitted, name), getattr(truth, name)) < 0.3 * design_error, name

    listed = cli_json("calibrations", "--bench", str(mesh_bench))["calibrations"]
    assert [(row["id"], row["kind"], row["procedures"]) for row in listed] == [(record.id, "mzi_mesh", ["mesh"])]
    assert listed[0]["holdout_rms"] == summary["holdout_rms"]
    shown = cli_json("calibrations", record.id)
    assert shown["parameters"]["theta_offset"] == record.parameters.theta_offset
    assert all(item["max_abs"] == 0 for item in cli_json("calibrations", record.id, record.id)["parameters"])
    drifted = record.model_copy(deep=True, update={"id": new_id()})
    drifted.parameters.phi_offset[2] += 0.25
    Store(data_dir).save_calibration(drifted)
    compared = {item["name"]: item for item in cli_json("calibrations", record.id, drifted.id)["parameters"]}
    assert compared["phi_offset"]["max_abs"] == pytest.approx(0.25) and compared["phi_offset"]["worst_index"] == [2]
    assert compared["theta_offset"]["max_abs"] == 0


def test_labsat_train_calibrates_trains_and_evaluate_reloads_the_mesh_model(
    mesh_bench: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        session, "calibrate_bench", lambda bench, store, **kw: calibrate_bench(bench, store, mesh=QUICK)
    )
    args = ("train", "--bench", str(mesh_bench), "--method", "pat+sat", "--dataset", "iris", *TRAIN_FLAGS)
    trained = cli_json(*args, "--epochs", "20")
    assert trained["calibrated_now"] is True  # no calibration yet: a mesh fit ran first and was stored
    assert trained["test_accuracy_device"] > 0.5  # three classes: chance is 1/3
    assert trained["queries"]["forwards"] == 2 * trained["steps"]  # PAT+SAT: both SAM passes on the device
    assert trained["settings"]["hidden"] == [] and trained["settings"]["encoder"] == 4

    store = Store(data_dir)
    net, metadata = load_model(store, trained["model"])
    assert net.sizes == (4, 3) and net.layer_sizes == (4, 3)  # iris → 4 encoder amplitudes → first 3 of 4 modes
    assert tuple(net.theta[0].shape) == (12,)  # one phase per heater
    assert metadata["system"] == "mzi_mesh" and metadata["calibration"] == trained["calibration"]
    again = cli_json(*args, "--epochs", "1")
    assert again["calibrated_now"] is False and again["calibration"] == trained["calibration"]

    result = cli_json("evaluate", "--bench", str(mesh_bench), "-m", trained["model"])
    (model,) = result["models"]
    assert model["accuracy"] == trained["test_accuracy_twin"]  # the same twin, rebuilt from the stored record
    assert abs(model["device_accuracy"] - trained["test_accuracy_device"]) <= 0.1  # the device has read noise
    assert model["sweeps"] == {} and "not run on a 4-mode mesh: drift sweep, noise sweep" in model["notes"][0]
    assert Path(result["report"]).is_file()
    refused = cli_refusal("evaluate", "--bench", str(mesh_bench), "-m", trained["model"], "--sweep", "drift")
    assert "sweep 'drift': not run on a 4-mode mesh (bench 'sim-mzi-4'); its sweeps: none" in refused


def test_refusals_name_the_bench_and_the_reason(mesh_bench: Path, tmp_path: Path) -> None:
    only = cli_refusal("calibrate", "--bench", str(mesh_bench), "--only", "rings")
    assert f"--only: for an MRR bank's calibration procedures only; bench '{BENCH}' is a 4-mode mesh" in only
    mesh_on_bank = cli_refusal("calibrate", "--mesh-settings", "20")
    assert "--mesh-*: for an MZI mesh's fit only; bench 'sim-mrr' is a 8x8 bank" in mesh_on_bank
    bp = cli_refusal("train", "--bench", str(mesh_bench), "--method", "bp", "--dataset", "iris")
    assert "a mesh's layer is |U(θ)x|², not a weight matrix" in bp
    wide = cli_refusal("train", "--bench", str(mesh_bench), "--dataset", "digits")
    assert "a 4-mode mesh reads at most 4 classes; the dataset has 10" in wide
    fd = cli_refusal(
        "train", "--bench", str(mesh_bench), "--dataset", "iris", "--method", "sat", "--fd-disturbance", "scale"
    )
    assert f"FD-SAT (fd_disturbance 'scale') cannot train against that on bench '{BENCH}': it is a 4-mode mesh, " in fd
    assert "which has none" in fd
    assert Store().list_calibrations() == []  # every refusal came before any calibration


def test_the_rest_jobs_calibrate_train_and_deploy_on_a_mesh(mesh_bench: Path, data_dir: Path) -> None:
    engine = JobEngine(Store(data_dir), [mesh_bench], progress_interval=0.05)
    with TestClient(create_app(engine, token_table())) as client:

        def run(kind: str, params: dict[str, Any]) -> dict[str, Any]:
            submitted = client.post("/api/jobs", json={"kind": kind, "params": params}, headers=auth(Scope.OPERATE))
            assert submitted.status_code == 201, submitted.text
            url = f"/api/jobs/{submitted.json()['id']}"
            final = ("succeeded", "failed", "cancelled")
            return wait_for(
                lambda: (job := client.get(url, headers=auth(Scope.READ)).json())["state"] in final and job,
                what=f"the {kind} job",
            )

        refused = run("calibrate", {"only": ["rings"]})
        assert refused["state"] == "failed"
        assert f"only: for an MRR bank's calibration procedures only; bench '{BENCH}'" in refused["error"]
        calibrated = run("calibrate", {"mesh": QUICK.model_dump()})
        assert calibrated["state"] == "succeeded", calibrated["error"]
        assert calibrated["result"]["holdout_rms"] < 0.2 * calibrated["result"]["design_holdout_rms"]
        trained = run("train", {"method": "pat+sat", "dataset": "iris", "epochs": 2, "hidden": []})
        assert trained["state"] == "succeeded", trained["error"]
        assert trained["result"]["calibration"] == calibrated["result"]["calibration"]
        deployed = run("deploy", {"model": trained["result"]["model"]})
        assert deployed["state"] == "succeeded", deployed["error"]
        assert deployed["result"]["calibration"] == calibrated["result"]["calibration"]
        assert deployed["result"]["queries"]["forwards"] == 1  # the whole test split in one pass through the mesh
        trained_accuracy = trained["result"]["test_accuracy_device"]
        assert abs(deployed["result"]["test_accuracy_device"] - trained_accuracy) <= 0.1  # read noise only

        listed = client.get("/api/calibrations", headers=auth(Scope.READ)).json()
        assert [(row["kind"], row["holdout_rms"]) for row in listed] == [
            ("mzi_mesh", calibrated["result"]["holdout_rms"])
        ]
        record = client.get(f"/api/calibrations/{listed[0]['id']}", headers=auth(Scope.READ)).json()
        assert record["kind"] == "mzi_mesh" and len(record["parameters"]["theta_offset"]) == 6
