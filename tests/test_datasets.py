"""Dataset loaders: built-in digits and iris, .npz files, MNIST-format IDX directories."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from labsat.datasets import DatasetError, load_dataset, read_idx


def _in_unit_range(x: torch.Tensor) -> bool:
    return bool((x >= 0).all() and (x <= 1).all())


def test_digits_is_a_seeded_stratified_split_in_unit_range() -> None:
    first, again, other = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert (first.n_features, first.n_classes) == (64, 10)
    assert (len(first.train), len(first.test)) == (1347, 450)
    assert _in_unit_range(first.train.x) and _in_unit_range(first.test.x)
    assert float(first.train.x.max()) == 1.0
    assert torch.equal(first.test.x, again.test.x) and torch.equal(first.test.y, again.test.y)
    assert not torch.equal(first.test.y, other.test.y)
    per_class = torch.bincount(torch.cat([first.train.y, first.test.y]))
    assert torch.bincount(first.test.y).tolist() == pytest.approx((per_class * 0.25).tolist(), abs=1)


def test_iris_is_scaled_with_training_statistics_only() -> None:
    iris = load_dataset("iris", seed=0)
    assert (iris.n_features, iris.n_classes, len(iris.test)) == (4, 3, 38)
    assert iris.train.x.amin(dim=0).tolist() == [0.0] * 4
    assert iris.train.x.amax(dim=0).tolist() == [1.0] * 4
    assert _in_unit_range(iris.test.x)  # clipped, never rescaled with test statistics


def test_npz_integer_images_scale_by_type_and_float_data_by_training_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = tmp_path / "images.npz"
    np.savez(
        images,
        x_train=rng.integers(0, 256, (20, 4, 4), dtype=np.uint8),
        y_train=rng.integers(0, 3, 20),
        x_test=np.full((5, 4, 4), 255, dtype=np.uint8),
        y_test=np.array([0, 1, 2, 1, 0]),
    )
    loaded = load_dataset(images)
    assert (loaded.name, loaded.n_features, loaded.n_classes) == ("images", 16, 3)
    assert torch.equal(loaded.test.x, torch.ones(5, 16))

    table = tmp_path / "table.npz"
    np.savez(
        table, x_train=np.array([[-2.0, 10.0], [2.0, 30.0]]), y_train=[0, 1], x_test=np.array([[0.0, 40.0]]), y_test=[1]
    )
    scaled = load_dataset(table)
    assert scaled.train.x.tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert scaled.test.x.tolist() == [[0.5, 1.0]]


def test_npz_without_the_four_arrays_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 2)))
    with pytest.raises(DatasetError, match="missing arrays y_train, x_test, y_test"):
        load_dataset(path)


def _write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def test_mnist_idx_directory_plain_and_gzipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train_images = rng.integers(0, 256, (12, 3, 3), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", train_images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, 12), compress=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (4, 3, 3)), compress=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([9, 0, 1, 2]))
    loaded = load_dataset(tmp_path)
    assert (len(loaded.train), len(loaded.test), loaded.n_features, loaded.n_classes) == (12, 4, 9, 10)
    assert torch.allclose(loaded.train.x, torch.as_tensor(train_images.reshape(12, 9) / 255.0, dtype=torch.float32))
    assert loaded.test.y.tolist() == [9, 0, 1, 2]


def test_idx_reader_rejects_a_wrong_magic_or_size(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(DatasetError, match="header says 5 data bytes, file has 3"):
        read_idx(short)


def test_unknown_dataset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not one of digits, iris"):
        load_dataset(tmp_path / "nothing-here")


def test_the_validation_split_is_held_out_of_training_seeded_and_stratified() -> None:
    digits = load_dataset("digits", seed=0)
    split = digits.with_validation(0.15, seed=1)
    assert split.validation is not None and split.test is digits.test  # the test split is untouched
    assert len(split.validation) == round(0.15 * len(digits.train))
    assert len(split.train) + len(split.validation) == len(digits.train)

    def rows(x: torch.Tensor) -> set[bytes]:
        return {row.numpy().tobytes() for row in x}

    train_rows, validation_rows = rows(split.train.x), rows(split.validation.x)
    assert train_rows | validation_rows == rows(digits.train.x)
    assert not train_rows & validation_rows  # digits has no duplicate images within its training split
    assert not validation_rows & rows(digits.test.x)
    shares = torch.bincount(split.validation.y, minlength=10) / len(split.validation)
    torch.testing.assert_close(
        shares, torch.bincount(digits.train.y, minlength=10) / len(digits.train), atol=0.01, rtol=0
    )
    again = digits.with_validation(0.15, seed=1)
    assert again.validation is not None and torch.equal(again.validation.x, split.validation.x)
    other = digits.with_validation(0.15, seed=2).validation
    assert other is not None and not torch.equal(other.x, split.validation.x)
    assert split.with_validation(0.15, seed=1) is split  # already split: nothing more is held out
    assert digits.with_validation(0.0, seed=1).validation is None
    with pytest.raises(DatasetError, match="validation_fraction"):
        digits.with_validation(1.0, seed=1)
