"""The MRR weight-bank System: a photonic matrix–vector layer made of device calls.

``forward(x, controls)`` computes ``y ≈ x @ w(controls).T`` on the chip. A logical layer larger than
the physical bank is time-multiplexed: for each rows×cols tile the heaters are programmed (through
the guard, ramped), the System waits for the heaters to settle, the batch's slice of inputs is
streamed through the input modulators, and the detector readings are accumulated into partial sums.
Each tile is programmed once per forward, whatever the batch; the tiles of a layer go in the order that keeps
the guard's ramps between them short (:mod:`labsat.systems.tile_order`).

Inputs are optical intensities, so they must be non-negative. Each sample is scaled by its own
maximum before it is sent (the modulators only reach full power) and the result scaled back; the
operation is linear in ``x``, so this costs nothing in accuracy and uses the detectors' full range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from labsat.clock import Clock
from labsat.devices import BatchStreamer, Detector
from labsat.guard import GuardedVoltageSource
from labsat.readout import QueryStats, Readout, measure_batch
from labsat.specs.mrr import MRRSystemSpec
from labsat.systems.tile_order import nearest_order

TileOrder = Literal["nearest", "given"]


def program_heaters(
    heaters: GuardedVoltageSource, volts: torch.Tensor, clock: Clock, settle_time_s: float, stats: QueryStats
) -> None:
    """Write a whole heater vector through the guard (ramped), wait for it to settle, count it."""
    started = clock.now()
    heaters.set_vector(volts)
    clock.sleep(settle_time_s)
    stats.programs += 1
    stats.bench_time_s += clock.now() - started


@dataclass(kw_only=True)
class HeaterChipSystem:
    """What an integrated chip's System is made of: heaters and input modulators through the guard, detectors,
    the bench clock, the readout that turns volts into layer units, and the query counters.

    MRR banks and MZI meshes share it; each adds its spec, the shape of its controls and its layer operation.
    """

    heaters: GuardedVoltageSource
    modulators: GuardedVoltageSource
    detectors: Detector
    clock: Clock
    torch_device: torch.device
    streamer: BatchStreamer | None = None
    readout: Readout = field(init=False)
    stats: QueryStats = field(default_factory=QueryStats)

    @property
    def control_range(self) -> tuple[float, float]:
        """The heater voltage range every heater allows."""
        return self.heaters.common_range()

    def project_controls(self, controls: torch.Tensor) -> torch.Tensor:
        """The nearest heater vector ``(n_heaters,)`` the guard accepts (same dtype and device)."""
        projected = self.heaters.project(controls)
        assert isinstance(projected, torch.Tensor)
        return projected

    def _allowed_drives(self, volts: torch.Tensor) -> torch.Tensor:
        """The nearest modulator drives ``(B, inputs)`` the guard accepts, row by row."""
        projected = self.modulators.project_batch(volts)
        assert isinstance(projected, torch.Tensor)
        return projected

    def measure_volts(self, modulator_volts: torch.Tensor) -> torch.Tensor:
        """Detector volts ``(B, outputs)`` for modulator drives ``(B, inputs)`` at the present heater setting."""
        return measure_batch(
            self.modulators, self.detectors, self.streamer, modulator_volts, self.clock, self.stats
        ).to(self.torch_device)

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs in layer units for modulators passing fractions ``x`` ∈ [0, 1] of full power ``(B, inputs)``."""
        return self.readout.to_units(self.measure_volts(self.readout.modulator_volts(x, self._allowed_drives)))


@dataclass(kw_only=True)
class MRRBankSystem(HeaterChipSystem):
    """A rows×cols MRR bank driven through guarded devices."""

    spec: MRRSystemSpec
    tile_order: TileOrder = "nearest"
    """``nearest``: tiles in the shortest-ramp order; ``given``: row-major, as the layer lays them out."""

    def __post_init__(self) -> None:
        self.readout = Readout.nominal(self.spec, self.rows, self.cols, self.torch_device)

    @property
    def rows(self) -> int:
        return self.spec.rows

    @property
    def cols(self) -> int:
        return self.spec.cols

    # -- device-level building blocks (calibration uses these directly) ------------------------------

    def program(self, heater_volts: torch.Tensor) -> None:
        """Set all heaters to a (rows, cols) voltage map, then wait for them to settle."""
        if tuple(heater_volts.shape) != (self.rows, self.cols):
            raise ValueError(f"heater map must be ({self.rows}, {self.cols}), got {tuple(heater_volts.shape)}")
        program_heaters(self.heaters, heater_volts.reshape(-1), self.clock, self.spec.settle_time_s, self.stats)

    # -- the layer operation -------------------------------------------------------------------------

    def project_controls(self, controls: torch.Tensor) -> torch.Tensor:
        """The nearest ``(out, in)`` controls that the guard accepts tile by tile, as :meth:`forward` writes them.

        Each rows×cols tile is one heater vector, its unused rings held at their safe values (as
        :meth:`forward` pads them); all tiles are projected at once, in the controls' dtype.
        """
        out_features, in_features = controls.shape
        tiles, held = self._tiles(out_features, in_features)
        n = self.rows * self.cols
        safe = torch.as_tensor(self.heaters.safe_values, dtype=torch.float64)
        batch = safe.repeat(len(tiles), 1).reshape(len(tiles), self.rows, self.cols)
        source = controls.detach().to("cpu", torch.float64)
        for k, (r0, r1, c0, c1) in enumerate(tiles):
            batch[k, : r1 - r0, : c1 - c0] = source[r0:r1, c0:c1]
        lower = np.where(held, self.heaters.safe_values, -np.inf)
        upper = np.where(held, self.heaters.safe_values, np.inf)
        projected = self.heaters.project_batch(batch.reshape(-1, n).to(controls.dtype), lower=lower, upper=upper)
        assert isinstance(projected, torch.Tensor)
        result = torch.empty_like(controls, device="cpu")
        shaped = projected.reshape(len(tiles), self.rows, self.cols)
        for k, (r0, r1, c0, c1) in enumerate(tiles):
            result[r0:r1, c0:c1] = shaped[k, : r1 - r0, : c1 - c0]
        return result.to(controls.device)

    def _tiles(self, out_features: int, in_features: int) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
        """The tiles ``(r0, r1, c0, c1)`` row-major, and per tile which heaters are padding."""
        tiles = [
            (r0, min(r0 + self.rows, out_features), c0, min(c0 + self.cols, in_features))
            for r0 in range(0, out_features, self.rows)
            for c0 in range(0, in_features, self.cols)
        ]
        held = np.ones((len(tiles), self.rows, self.cols), dtype=bool)
        for k, (r0, r1, c0, c1) in enumerate(tiles):
            held[k, : r1 - r0, : c1 - c0] = False
        return tiles, held.reshape(len(tiles), -1)

    def forward(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """``(B, in) -> (B, out)`` with the logical layer's heater voltages ``controls`` of shape (out, in).

        Each tile is programmed once and the whole batch measured on it; with :attr:`tile_order` ``nearest``
        the tiles are visited in the order that keeps heater moves short (:mod:`labsat.systems.tile_order`).
        """
        out_features, in_features = controls.shape
        if x.ndim != 2 or x.shape[1] != in_features:
            raise ValueError(f"inputs must be (B, {in_features}), got {tuple(x.shape)}")
        x = x.detach().to(self.torch_device, torch.float32)
        if bool((x < 0).any()):
            raise ValueError("inputs to a photonic layer are optical intensities and must be non-negative")
        scale = x.amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        x = x / scale
        controls = controls.detach().to(self.torch_device, torch.float32)
        tiles, _ = self._tiles(out_features, in_features)
        padding = torch.as_tensor(self.heaters.safe_values.reshape(self.rows, self.cols), dtype=torch.float32)
        maps = padding.to(self.torch_device).repeat(len(tiles), 1, 1)
        for k, (r0, r1, c0, c1) in enumerate(tiles):
            maps[k, : r1 - r0, : c1 - c0] = controls[r0:r1, c0:c1]
        order: Sequence[int] = range(len(tiles))
        if self.tile_order == "nearest":
            programs = maps.reshape(len(tiles), -1).to("cpu", torch.float64).numpy()
            order = nearest_order(self.heaters.values(), programs, self.heaters.max_step)
        y = torch.zeros(x.shape[0], out_features, device=self.torch_device)
        for k in order:
            r0, r1, c0, c1 = tiles[k]
            self.program(maps[k])
            inputs = torch.zeros(x.shape[0], self.cols, device=self.torch_device)
            inputs[:, : c1 - c0] = x[:, c0:c1]
            y[:, r0:r1] += self.measure(inputs)[:, : r1 - r0]
        self.stats.forwards += 1
        return y * scale
