"""Logical layers larger than the bank: a ``(out, in)`` matrix as whole ``R×C`` tiles, zero-padded.

The grid layout ``(..., tr, R, tc, C)`` keeps tile columns between rows and channels, so a padded logical
matrix *is* the ring-grid layout the weights are computed on (see :class:`~labsat.physics.mrr.weights.GridView`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_tiles(matrix: Tensor, rows: int, cols: int) -> Tensor:
    """``(..., out, in) -> (..., tr, tc, rows, cols)``, zero-padded to whole tiles.

    Zero is what the System writes to the unused rings of a partial tile (their safe heater value);
    the padding matters because those rings still heat their neighbours.
    """
    return logical_grid(matrix, rows, cols).transpose(-3, -2)


def from_tiles(tiles: Tensor, out_features: int, in_features: int) -> Tensor:
    """Inverse of :func:`to_tiles`: ``(..., tr, tc, rows, cols) -> (..., out, in)``, padding dropped."""
    return from_logical_grid(tiles.transpose(-3, -2), out_features, in_features)


def logical_grid_shape(shape: torch.Size, rows: int, cols: int) -> torch.Size:
    """Shape of :func:`logical_grid` for a logical matrix of ``shape``."""
    *lead, out_features, in_features = shape
    return torch.Size((*lead, -(-out_features // rows), rows, -(-in_features // cols), cols))


def logical_grid(controls: Tensor, rows: int, cols: int) -> Tensor:
    """``(..., out, in)`` zero-padded to whole tiles and viewed as ``(..., tr, R, tc, C)`` (see :class:`GridView`)."""
    out_features, in_features = controls.shape[-2:]
    grid_shape = logical_grid_shape(controls.shape, rows, cols)
    pad_rows, pad_cols = grid_shape[-4] * rows - out_features, grid_shape[-2] * cols - in_features
    padded = F.pad(controls, (0, pad_cols, 0, pad_rows)) if pad_cols or pad_rows else controls
    return padded.reshape(grid_shape)


def from_logical_grid(weights: Tensor, out_features: int, in_features: int) -> Tensor:
    """Grid-layout weights ``(..., tr, R, tc, C)`` back to the logical ``(..., out, in)``, padding dropped."""
    *lead, tile_rows, rows, tile_cols, cols = weights.shape
    whole = weights.reshape(*lead, tile_rows * rows, tile_cols * cols)
    if (tile_rows * rows, tile_cols * cols) == (out_features, in_features):
        return whole
    return whole[..., :out_features, :in_features]
