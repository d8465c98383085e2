"""Request and response models of the REST API (the job model itself is :mod:`labsat.jobs.model`).

Only pydantic here, so :mod:`labsat.client` parses responses with the same models the server
documents, without importing FastAPI or torch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CHANNEL_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$"


class ErrorItem(BaseModel):
    """One refused field: where it is (``["body", "params", "epochs"]``), why, and a short error type."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error answer: ``detail`` is a sentence, or one item per refused field (422s naming fields)."""

    detail: str | list[ErrorItem]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Whoami(BaseModel):
    name: str
    scope: Literal["read", "operate", "admin"]


class BenchSummary(BaseModel):
    """A bench and who holds it: ``busy`` while a job runs or is paused on it; ``halted`` under an emergency
    stop; ``faulted`` after a failed safe state or an output in an unknown state (latched: an admin clears it)."""

    name: str
    file: str
    state: Literal["idle", "busy", "halted", "faulted"]
    job: str | None = Field(None, description="The job holding the bench.")
    queued: list[str] = Field(default_factory=list, description="Queued job ids, next first.")
    halted: str | None = Field(None, description="Why writes are refused (an emergency stop in progress).")
    fault: str | None = Field(None, description="The latched fault; only the safe state writes until it is cleared.")


class FaultCleared(BaseModel):
    """The answer to an administrator's clear: which fault was lifted (null: the bench had none)."""

    bench: str
    cleared: str | None
    state: Literal["idle", "busy", "halted", "faulted"]


class ChannelInfo(BaseModel):
    """A channel: limits and present value for outputs (volts, mW), a reading for detector channels."""

    name: str
    min_v: float | None = None
    max_v: float | None = None
    power_max_mw: float | None = None
    max_step_v: float | None = None
    safe_v: float | None = None
    present_v: float | None = None
    present_mw: float | None = None
    present: float | None = Field(None, description="Detector reading; null while a job holds the bench.")


class LightInfo(BaseModel):
    """A light source's limits and present state (null fields: unknown after a failed exchange)."""

    power_mw_range: tuple[float, float]
    wavelength_nm_range: tuple[float, float]
    safe: str = Field(description="The safe state: output off.")
    enabled: bool | None = None
    power_mw: float | None = None
    wavelength_nm: float | None = None


class FrameInfo(BaseModel):
    """An SLM's limits and the frame it shows now (null fields: nothing shown yet)."""

    shape: list[int]
    gray_range: list[float]
    safe_gray: float
    settle_time_s: float
    present_mean_gray: float | None = None
    preview: list[list[float]] | None = Field(None, description="The frame shrunk to at most 32 pixels a side.")


class DeviceInfo(BaseModel):
    name: str
    driver: str
    kind: str
    address: str | None = None
    identity: str | None = None
    channels: list[ChannelInfo] = Field(default_factory=list)
    light: LightInfo | None = Field(None, description="Light sources only.")
    frame: FrameInfo | None = Field(None, description="Spatial light modulators only.")


class BenchDetail(BenchSummary):
    """A bench with its devices, channels, limits and present values."""

    live: bool = Field(
        description="True: read from the instruments now. False: a job holds the bench; outputs are what the "
        "guard last wrote and detectors are not read."
    )
    power_budget_mw: float | None = Field(None, description="The bench's heater power budget (null: none set).")
    power_used_mw: float = Field(0.0, description="Electrical power of every voltage source's outputs now (mW).")
    devices: list[DeviceInfo]


class ChannelSet(BaseModel):
    """Manual write: ``{"values": {"heaters.h3": 1.5}}``; checked whole by the guard, ramped, all or nothing."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, float] = Field(min_length=1, description="DEVICE.CHANNEL -> volts.")


class ChannelSetResult(BaseModel):
    bench: str
    values: dict[str, float] = Field(description="The channels' values after the write.")


class EmergencyStopResult(BaseModel):
    bench: str
    cancelled: list[str] = Field(description="Jobs cancelled: the running one and every queued one.")
    outputs: dict[str, list[float]] = Field(description="Every voltage source's outputs after the stop (volts).")


class CalibrationSummary(BaseModel):
    id: str
    bench: str
    kind: str = Field("mrr_bank", description="The system calibrated: its system.type (mrr_bank, mzi_mesh, d2nn...).")
    created: datetime
    complete: bool
    procedures: list[str]
    flags: int
    twin_weight_rms: float | None = Field(None, description="MRR bank: the twin's validation RMS per weight.")
    holdout_rms: float | None = Field(None, description="MZI mesh: the fitted twin's RMS on held-out settings.")


class ModelInfo(BaseModel):
    """A trained model: what its trainer recorded (method, dataset, accuracy, calibration...)."""

    id: str
    bench: str
    method: str
    created: datetime
    metadata: dict[str, Any]


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bench: str | None = Field(None, description="Bench to deploy on; may be omitted when the service has one.")


class ArtifactFile(BaseModel):
    path: str = Field(description="Path inside the item's folder.")
    size: int
    url: str
