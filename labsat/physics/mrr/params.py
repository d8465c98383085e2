"""The parameters that distinguish one MRR chip (rings, channels, modulators, detectors) from another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from labsat.physics.chip import ChipTensors

TemperatureShift = float | Tensor
"""A uniform chip temperature change ΔT in K: a float, or a tensor broadcastable to the ring grid."""

_RING_FIELDS = (
    "rest_resonance_nm",
    "fwhm_nm",
    "drop_depth",
    "efficiency_nm_per_mw",
    "heater_resistance_ohm",
)
_CHANNEL_FIELDS = ("channel_wavelength_nm", "modulator_v_pi", "input_power_mw")
_ROW_FIELDS = ("readout_volts_per_mw", "readout_offset_v")
TENSOR_FIELDS = (
    "channel_wavelength_nm",
    *_RING_FIELDS,
    "crosstalk_kernel",
    "modulator_v_pi",
    "input_power_mw",
    *_ROW_FIELDS,
)
"""Names of the tensor fields of :class:`MRRChipParams` (the fittable quantities of a twin)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class MRRChipParams(ChipTensors):
    """Everything that distinguishes one MRR chip (plus its modulators and detectors) from another.

    ``rest_resonance_nm`` is the resonance with the heater off at the reference temperature: the
    design wavelength plus this ring's fabrication offset. Heaters only ever red-shift it.
    ``crosstalk_kernel[i, j]`` is the fraction of the heater power of ring ``(r + i − kh//2, c + j − kw//2)``
    that reaches ring ``(r, c)``; its centre is 1 and its sides are odd.
    ``spectral_crosstalk`` makes every ring of a row filter every channel (see :func:`bank_weights`).

    Frozen: use :func:`dataclasses.replace` for a changed chip. Constants derived from the tensors
    (``1e3/R``, ``2/FWHM``, …) are cached per instance while no tensor requires grad; in-place edits of
    a tensor invalidate them, edits through ``.data`` do not (autograd cannot see those either).
    """

    FIELDS: ClassVar[tuple[str, ...]] = TENSOR_FIELDS
    SHARED: ClassVar[frozenset[str]] = frozenset({"crosstalk_kernel"})

    channel_wavelength_nm: Tensor  # (*S, C)
    rest_resonance_nm: Tensor  # (*S, R, C)
    fwhm_nm: Tensor  # (*S, R, C)
    drop_depth: Tensor  # (*S, R, C)
    efficiency_nm_per_mw: Tensor  # (*S, R, C)
    heater_resistance_ohm: Tensor  # (*S, R, C)
    crosstalk_kernel: Tensor  # (kh, kw)
    drift_nm_per_k: float = 0.08
    modulator_v_pi: Tensor  # (*S, C)
    input_power_mw: Tensor  # (*S, C)
    readout_volts_per_mw: Tensor  # (*S, R)
    readout_offset_v: Tensor  # (*S, R)
    spectral_crosstalk: bool = False

    def __post_init__(self) -> None:
        rows, cols = self.rest_resonance_nm.shape[-2:]
        for name in _RING_FIELDS:
            if getattr(self, name).shape[-2:] != (rows, cols):
                raise ValueError(f"{name} must end in ({rows}, {cols}), got {tuple(getattr(self, name).shape)}")
        for name in _CHANNEL_FIELDS:
            if getattr(self, name).shape[-1:] != (cols,):
                raise ValueError(f"{name} must end in ({cols},), got {tuple(getattr(self, name).shape)}")
        for name in _ROW_FIELDS:
            if getattr(self, name).shape[-1:] != (rows,):
                raise ValueError(f"{name} must end in ({rows},), got {tuple(getattr(self, name).shape)}")
        kernel = self.crosstalk_kernel
        if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"crosstalk_kernel must be 2-D with odd sides, got {tuple(kernel.shape)}")

    @property
    def rows(self) -> int:
        return self.rest_resonance_nm.shape[-2]

    @property
    def cols(self) -> int:
        return self.rest_resonance_nm.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        """Leading chip-population dimensions ``S`` (empty for a single chip)."""
        return self.rest_resonance_nm.shape[:-2]

    @classmethod
    def stack(cls, chips: Sequence[MRRChipParams]) -> MRRChipParams:
        """A population from single chips that share one crosstalk kernel and one set of flags."""
        first = chips[0]
        for chip in chips[1:]:
            if not torch.equal(chip.crosstalk_kernel, first.crosstalk_kernel):
                raise ValueError("chips of one population must share the crosstalk kernel")
            if (chip.drift_nm_per_k, chip.spectral_crosstalk) != (first.drift_nm_per_k, first.spectral_crosstalk):
                raise ValueError("chips of one population must share drift_nm_per_k and spectral_crosstalk")
        stacked = {
            name: torch.stack([getattr(chip, name) for chip in chips])
            for name in TENSOR_FIELDS
            if name != "crosstalk_kernel"
        }
        return first.with_tensors(stacked)
