"""Stored calibrations and trained models; deploying a model to a bench (a ``deploy`` job)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from fastapi import APIRouter, Body, status

from labsat.api.auth import OperateAccess, ReadAccess
from labsat.api.deps import EngineDep
from labsat.api.schemas import CalibrationSummary, DeployRequest, ModelInfo
from labsat.calibration.stored import summary_fields
from labsat.jobs.model import Job
from labsat.systems.kind import installed_kinds

router = APIRouter(tags=["records"])

CALIBRATION_RECORD: Any = Union[tuple(kind.calibration.record for kind in installed_kinds())]  # noqa: UP007
"""A calibration record of any installed system kind, as the API documents and returns it."""


@router.get("/calibrations", summary="List calibrations")
def list_calibrations(who: ReadAccess, engine: EngineDep, bench: str | None = None) -> list[CalibrationSummary]:
    """Newest first, finished or not; a bank's records, a mesh's and a D2NN's (``kind``) alike."""
    return [CalibrationSummary(**summary_fields(record)) for record in engine.store.list_calibrations(bench)]


@router.get("/calibrations/{calibration_id}", summary="Get a calibration record", response_model=CALIBRATION_RECORD)
def get_calibration(who: ReadAccess, calibration_id: str, engine: EngineDep) -> Any:
    """The whole record. A bank's: options, every procedure's fits and flags, chip parameters, twin validation;
    its plots and raw sweeps are under ``/api/artifacts/calibrations/{id}``. A mesh's: the fit's options, the
    fitted mesh and readout, its RMS figures and cost. A D2NN's: the fit's options, every mask SLM's fitted
    LUT with its RMS against the nominal one and its fit residual, and the cost."""
    return engine.store.get_calibration(calibration_id)


@router.get("/models", summary="List trained models")
def list_models(
    who: ReadAccess, engine: EngineDep, bench: str | None = None, method: str | None = None
) -> list[ModelInfo]:
    return [ModelInfo(**vars(summary)) for summary in engine.store.list_models(bench, method)]


@router.get("/models/{model_id}", summary="Get a trained model")
def get_model(who: ReadAccess, model_id: str, engine: EngineDep) -> ModelInfo:
    """Its metadata; the control tensors are ``/api/artifacts/models/{id}/controls.pt``."""
    stored = engine.store.get_model(model_id)
    return ModelInfo(
        id=stored.id, bench=stored.bench, method=stored.method, created=stored.created, metadata=stored.metadata
    )


@router.post("/models/{model_id}/deploy", status_code=status.HTTP_201_CREATED, summary="Deploy a model to a bench")
def deploy(
    who: OperateAccess, model_id: str, engine: EngineDep, body: Annotated[DeployRequest | None, Body()] = None
) -> Job:
    """Submits a ``deploy`` job: the model runs on the bench over its test split and reports its accuracy there."""
    stored = engine.store.get_model(model_id)  # 404 now rather than a failed job later; a prefix made whole
    return engine.submit("deploy", body.bench if body else None, {"model": stored.id}, who.name)
