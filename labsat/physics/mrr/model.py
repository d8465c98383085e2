"""An MRR bank as a torch module: the simulator's ground truth and, with trainable fields, the twin."""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from labsat.physics.chip import register_chip_tensors
from labsat.physics.mrr.params import TENSOR_FIELDS, MRRChipParams, TemperatureShift
from labsat.physics.mrr.readout import balanced_readout, per_sample
from labsat.physics.mrr.weights import bank_weights, logical_readout, logical_weights


class MRRBankModel(nn.Module):
    """An MRR bank as a torch module: ground truth inside the simulator, fitted parameters in a twin.

    Fields named in ``trainable`` become :class:`~torch.nn.Parameter` copies (what calibration fits);
    the rest are buffers that share storage with ``params``.
    """

    def __init__(self, params: MRRChipParams, trainable: Iterable[str] = ()) -> None:
        super().__init__()
        register_chip_tensors(self, params, trainable)
        self.drift_nm_per_k = params.drift_nm_per_k
        self.spectral_crosstalk = params.spectral_crosstalk
        self._held_params: tuple[tuple[Tensor, ...], MRRChipParams] | None = None

    @property
    def params(self) -> MRRChipParams:
        """The module's present parameters (after ``.to()`` or a fitting step).

        Kept while the module holds the same tensors, so that its derived constants stay cached.
        """
        tensors = tuple(getattr(self, name) for name in TENSOR_FIELDS)
        held = self._held_params
        if held is None or any(a is not b for a, b in zip(held[0], tensors, strict=True)):
            fields = dict(zip(TENSOR_FIELDS, tensors, strict=True))
            params = MRRChipParams(
                **fields, drift_nm_per_k=self.drift_nm_per_k, spectral_crosstalk=self.spectral_crosstalk
            )
            held = self._held_params = (tensors, params)
        return held[1]

    def weights(self, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Ring weights ``(*S, R, C)`` for heater voltages ``(R, C)``."""
        return bank_weights(self.params, heater_volts, delta_t_k)

    def forward(self, x: Tensor, heater_volts: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Noiseless detector volts ``(*S, B, R)`` for input fractions ``x`` ``(B, C)`` on the bank."""
        params = self.params
        if heater_volts.shape[-2:] != (params.rows, params.cols):
            raise ValueError(
                f"heater_volts must end in ({params.rows}, {params.cols}); use readout() for larger layers"
            )
        power = x * per_sample(params.input_power_mw, params)
        return balanced_readout(params, bank_weights(params, heater_volts, delta_t_k), power)

    def layer(self, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Logical layer ``(B, in) -> (*S, B, out)``: ``Σ_c w·x`` with controls ``(out, in)`` tiled over the bank."""
        weights = logical_weights(self.params, controls, delta_t_k)
        return F.linear(x, weights) if weights.dim() == 2 else x @ weights.mT

    def readout(self, x: Tensor, controls: Tensor, delta_t_k: TemperatureShift = 0.0) -> Tensor:
        """Detector volts of a tiled logical layer, summed over column tiles (see :func:`logical_readout`)."""
        return logical_readout(self.params, x, controls, delta_t_k)
