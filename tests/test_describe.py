"""What a bench description shows of an SLM: its frame shrunk by block means, small enough to poll."""

from __future__ import annotations

import numpy as np

from labsat.describe import PREVIEW_PIXELS, preview


def test_a_frame_is_shrunk_by_block_means_to_at_most_the_preview_side() -> None:
    frame = np.arange(100 * 60, dtype=np.float64).reshape(100, 60)
    shrunk = preview(frame)
    assert shrunk.shape == (25, 30)  # blocks of 4 × 2 pixels
    assert shrunk[0, 0] == np.round(frame[:4, :2].mean(), 1)
    assert shrunk[-1, -1] == np.round(frame[96:, 58:].mean(), 1)
    assert max(preview(np.zeros((1080, 1920))).shape) <= PREVIEW_PIXELS


def test_a_frame_that_does_not_split_evenly_repeats_its_edge_and_a_small_one_is_kept_whole() -> None:
    frame = np.zeros((33, 5))
    frame[32] = 9.0  # the one row past 32: its block is that row repeated, not diluted by padding zeros
    shrunk = preview(frame)
    assert shrunk.shape == (17, 5) and np.all(shrunk[-1] == 9.0) and np.all(shrunk[:-1] == 0.0)
    small = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.array_equal(preview(small), small)
