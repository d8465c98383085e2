"""Every setting of a training run, declared once.

:class:`TrainConfig` is the single declaration the rest is built from: ``labsat train`` turns each field
into an option (its description is the option's help, see :mod:`labsat.cli.options`), the REST job
``train`` takes the same fields (:class:`~labsat.jobs.builtin.TrainParams` extends this model), and the
training loop, the checkpoint key and a stored model's metadata read it. A new setting is one field here.

The bounds are part of the declaration because the service takes these values from any operate token:
they keep a request from asking for a network or a run no bench PC can hold, and refuse non-finite numbers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from labsat.errors import LabsatError
from labsat.physics.diffractive import DISTURBANCES as MASK_DISTURBANCES
from labsat.training.methods import ASCENTS, METHODS, Method, parse_method
from labsat.training.physical import DRIFT

FD_DISTURBANCES = (*MASK_DISTURBANCES, DRIFT)
"""What FD-SAT can train against: a D2NN's mask misalignment, or a bank's drift (kelvin, through the twin)."""

MAX_WIDTH = 4096
"""Widest layer a request may ask for (hidden layers, encoder, DAT's residual network)."""

MAX_STEPS = 100_000
"""Most epochs, batch size or steps of one phase a request may ask for."""


def _enum(values: tuple[str, ...]) -> dict[str, Any]:
    """Schema of a string field whose values a validator checks: lists them for clients and forms."""
    return {"enum": list(values)}


class TrainConfig(BaseModel):
    """Every setting of a run; all of it goes into the checkpoint key and the stored model's metadata.

    Without SAT a step is an exact Adam step (ρ = 0 for every parameter group); with SAT the ascent gives
    ∇L at θ, SAT moves to θ + ε and the method's own gradient there drives Adam from θ
    (:mod:`labsat.training.loop`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    method: str = Field(
        "pat+sat", description=f"Training method: {', '.join(METHODS)}.", json_schema_extra=_enum(METHODS)
    )
    ascent: str | None = Field(
        None,
        description=f"Where SAT's ascent gradient comes from: {', '.join(ASCENTS)} (SAT methods only; default: "
        "per method).",
        json_schema_extra=_enum(ASCENTS),
    )
    epochs: int = Field(20, ge=1, le=MAX_STEPS, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, le=MAX_STEPS, description="Samples per optimizer step.")
    hidden: tuple[Annotated[int, Field(ge=1, le=MAX_WIDTH)], ...] = Field(
        (16,), max_length=8, description="Hidden layer widths of an MRR bank's network, comma-separated (empty: none)."
    )
    encoder: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="Width of a trained digital front end before the first photonic layer (a system with fewer "
        "inputs than the data has features).",
    )
    lr: float = Field(
        0.02,
        gt=0,
        le=100,
        description="Adam learning rate of the controls (volts on a bank, radians on a mesh or D2NN).",
    )
    digital_lr: float = Field(0.02, ge=0, le=100, description="Adam learning rate of the digital scale and bias.")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="How both learning rates follow the epochs: cosine or constant."
    )
    rho: float = Field(0.5, ge=0, le=100, description="SAT radius of the ascent over all controls together.")
    adaptive: bool = Field(True, description="ASAM-style scaling of the ascent by |θ − theta_ref| + eta.")
    eta: float = Field(0.05, ge=0, le=100, description="Floor of the adaptive scaling (volts or radians).")
    theta_ref: float | Literal["peak"] = Field(
        "peak",
        description="Reference of the adaptive scaling: a number, or peak (each element's resonance).",
    )
    digital_rho: float = Field(0.0, ge=0, le=100, description="SAT radius over the digital parameters (0: never).")
    sparsity: float = Field(
        0.0, ge=0, lt=1, description="SSAM: fraction of the controls left out of the ascent (0: SAM, all of them)."
    )
    mask: Literal["fisher", "dynamic"] = Field(
        "fisher", description="SSAM's mask: fisher (largest squared gradients) or dynamic (random, drop and regrow)."
    )
    mask_interval: int = Field(100, ge=1, le=MAX_STEPS, description="SSAM: steps between mask updates.")
    drop_rate: float = Field(
        0.5, gt=0, le=1, description="SSAM dynamic mask: fraction of kept controls dropped and regrown per update."
    )
    drop_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="SSAM dynamic mask: drop_rate cosine-decayed to 0 over the run, or constant."
    )
    fisher_samples: int = Field(
        16, ge=1, le=4096, description="SSAM Fisher mask: samples whose own gradients estimate the Fisher per update."
    )
    gsam_alpha: float = Field(
        0.0, ge=0, le=10, description="GSAM: weight of the clean gradient's part orthogonal to the ascent one (0: SAM)."
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Seeds the split, the initial controls, the data order, the noise."
    )
    noise_sigma: float | None = Field(
        None, ge=0, le=100, description="NAT's read-noise σ per unit input scale (default: fitted on the bench)."
    )
    noise_control_sigma: float | None = Field(
        None,
        ge=0,
        le=100,
        description="NAT's control-noise σ (volts on a bank, radians on a mesh or D2NN; default: fitted on the bench).",
    )
    noise_drift: float = Field(
        0.5,
        ge=0,
        le=100,
        description="NAT's drift scale in the system's drift unit (a bank: kelvin), injected as control noise of the "
        "output size it has in the twin (0: none; a twin that models no drift: none).",
    )
    noise_repeats: int = Field(8, ge=2, le=10_000, description="Readings per input NAT's noise fit takes.")
    validation_fraction: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="Share of the training split held out (seeded, stratified) to validate each epoch; the test "
        "split is never seen in training (0: no validation).",
    )
    dat_hidden: int = Field(32, ge=1, le=MAX_WIDTH, description="Width of DAT's residual network on the twin.")
    dat_lr: float = Field(0.01, gt=0, le=100, description="Learning rate of DAT's residual network.")
    dat_fit_steps: int = Field(3, ge=0, le=MAX_STEPS, description="DAT's residual fit steps per training step.")
    fd_step: float = Field(0.01, gt=0, le=100, description="Finite-difference ascent: step per control (volts).")
    spsa_c: float = Field(0.02, gt=0, le=100, description="SPSA ascent: perturbation size (volts).")
    spsa_q: int = Field(4, ge=1, le=1000, description="SPSA ascent: random directions per estimate.")
    spsa_beta: float = Field(0.9, ge=0, lt=1, description="SPSA ascent: momentum of the running estimate.")
    fd_disturbance: str | None = Field(
        None,
        description=f"FD-SAT against this disturbance: a D2NN's mask misalignment ({', '.join(MASK_DISTURBANCES)}) "
        f"or a bank's {DRIFT} (SAT methods; on a bench in silico only: sat, nat+sat with the twin ascent).",
        json_schema_extra=_enum(FD_DISTURBANCES),
    )
    fd_delta_max: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="FD-SAT: largest random step of the disturbance (degrees of rotation, pixels of shift, "
        "scale fraction, kelvin of drift).",
    )
    fd_gain: float = Field(0.03, ge=0, le=100, description="FD-SAT: gain of its ascent step.")
    fd_two_sided: bool = Field(False, description="FD-SAT: random steps of either sign (default: positive only).")
    deploy_steps: int = Field(
        300, ge=0, le=MAX_STEPS, description="Steps fitting a weight-space network's weights onto the controls."
    )

    @field_validator("hidden", mode="before")
    @classmethod
    def _widths_from_text(cls, value: Any) -> Any:
        """``"16,8"`` (a command line's form) as ``(16, 8)``; an empty text is no hidden layer; one width alone
        (``-p hidden=16`` through the service) is one layer."""
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
        return value

    @field_validator("fd_disturbance")
    @classmethod
    def _known_disturbance(cls, name: str | None) -> str | None:
        if name is not None and name not in FD_DISTURBANCES:
            raise ValueError(f"unknown FD-SAT disturbance {name!r} (known: {', '.join(FD_DISTURBANCES)})")
        return name

    @field_validator("method")
    @classmethod
    def _known_method(cls, name: str) -> str:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
        return name

    @field_validator("ascent")
    @classmethod
    def _ascent_fits_method(cls, ascent: str | None, info: ValidationInfo) -> str | None:
        """Checked here, after ``method`` (fields validate in order), so the error names ``ascent``."""
        method = info.data.get("method")
        if method is not None:
            try:
                parse_method(method, ascent)
            except LabsatError as exc:
                raise ValueError(str(exc)) from None
        return ascent

    @property
    def parsed(self) -> Method:
        return parse_method(self.method, self.ascent)

    def settings(self) -> dict[str, Any]:
        """Plain-data form (JSON, checkpoints); the inverse is ``TrainConfig.from_settings``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> TrainConfig:
        """The config a stored run recorded; keys this version does not know (a run stored by another) are left out."""
        return cls.model_validate({key: value for key, value in settings.items() if key in cls.model_fields})
