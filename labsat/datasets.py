"""Datasets for training physical networks: built-in (scikit-learn's bundled copies) or from a local path.

Nothing is ever downloaded: ``digits`` (8×8 handwritten digits, 10 classes) and ``iris`` ship inside
scikit-learn; user data comes as an ``.npz`` file (``x_train, y_train, x_test, y_test``) or a directory of
MNIST-format IDX files.

Every loader returns features flattened to ``(N, F)`` float32 in [0, 1], because the first photonic
layer takes its inputs as optical intensities: a modulator passes a *fraction* of its full power, so an
input can be neither negative nor above one. Integer images are divided by their type's maximum; any
other data is min–max scaled per feature with the *training* split's range (test values outside that
range are clipped, never rescaled, so no test statistic leaks into training).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from labsat.errors import LabsatError

BUILTIN = ("digits", "iris")
TEST_FRACTION = 0.25
"""Held-out share of the built-in datasets (stratified, seeded): 450 of digits' 1797 images, 38 irises."""


class DatasetError(LabsatError):
    """A dataset that cannot be found or read."""


@dataclass(frozen=True)
class Split:
    """Features ``x`` (N, F) in [0, 1] and integer labels ``y`` (N,)."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or len(self.x) != len(self.y):
            shapes = f"{tuple(self.x.shape)} and {tuple(self.y.shape)}"
            raise DatasetError(f"a split needs x (N, F) and y (N,), got {shapes}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int, seed: int) -> Split:
        """``n`` samples drawn without replacement (seeded); the whole split if it has no more than ``n``."""
        if n >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Dataset:
    """A named train/test pair with its shape, and the validation split held out of the training one (if any).

    Every choice made while training (hyperparameters, the epoch to keep) is made on ``validation``; ``test``
    is used once, for the final numbers.
    """

    name: str
    train: Split
    test: Split
    n_classes: int
    validation: Split | None = None

    @property
    def n_features(self) -> int:
        return self.train.x.shape[1]

    def subset(self, n_train: int, n_test: int, seed: int) -> Dataset:
        """A smaller copy (for fast tests and smoke runs); the full test split is what results report."""
        return Dataset(self.name, self.train.subset(n_train, seed), self.test.subset(n_test, seed + 1), self.n_classes)

    def with_validation(self, fraction: float, seed: int) -> Dataset:
        """``fraction`` of the training split moved into ``validation`` (seeded; stratified where every class has two
        samples or more and the validation split can hold one of each), the rest kept for training.

        Already split, or ``fraction`` leaving no sample out: this dataset unchanged. The test split is untouched.
        """
        if not 0 <= fraction < 1:
            raise DatasetError(f"validation_fraction must be in [0, 1), got {fraction}")
        held = round(fraction * len(self.train))
        if self.validation is not None or held == 0 or held >= len(self.train):
            return self
        from sklearn.model_selection import train_test_split

        labels = self.train.y.cpu().numpy()
        counts = np.bincount(labels)
        present = counts[counts > 0]
        stratify = labels if present.min() >= 2 and len(present) <= held <= len(labels) - len(present) else None
        indices = np.arange(len(labels))
        keep, out = train_test_split(indices, test_size=held, random_state=seed, stratify=stratify)
        keep_t = torch.as_tensor(np.sort(keep), device=self.train.y.device)
        out_t = torch.as_tensor(np.sort(out), device=self.train.y.device)
        train = Split(self.train.x[keep_t], self.train.y[keep_t])
        validation = Split(self.train.x[out_t], self.train.y[out_t])
        return Dataset(self.name, train, self.test, self.n_classes, validation)


def load_dataset(spec: str | Path, *, seed: int = 0) -> Dataset:
    """``"digits"``, ``"iris"``, a ``.npz`` file or a directory of IDX files.

    ``seed`` fixes the train/test split of the built-in datasets (files carry their own split).
    """
    name = str(spec)
    if name in BUILTIN:
        return _builtin(name, seed)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _idx_dir(path)
    if path.suffix == ".npz" and path.is_file():
        return _npz(path)
    if not path.exists():
        raise DatasetError(f"unknown dataset {name!r}: not one of {', '.join(BUILTIN)} and no such file or directory")
    raise DatasetError(f"{path}: expected a .npz file or a directory of MNIST-format IDX files")


def _builtin(name: str, seed: int) -> Dataset:
    from sklearn.datasets import load_digits, load_iris
    from sklearn.model_selection import train_test_split

    bunch = load_digits() if name == "digits" else load_iris()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y)
    if name == "digits":  # 4-bit grey levels 0..16: a fixed scale keeps the pixels' meaning
        x_train, x_test = x_train / 16.0, x_test / 16.0
    else:
        x_train, x_test = _minmax(x_train, x_test)
    return _assemble(name, x_train, y_train, x_test, y_test)


def _npz(path: Path) -> Dataset:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive]
            if missing:
                raise DatasetError(f"{path}: missing arrays {', '.join(missing)} (need {', '.join(keys)})")
            x_train, y_train, x_test, y_test = (archive[key] for key in keys)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npz archive ({exc})") from None
    x_train, x_test = _scale(x_train, x_test)
    return _assemble(path.stem, x_train, y_train, x_test, y_test)


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped): magic ``0 0 type ndim``, big-endian int32 sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: header says {expected} data bytes, file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_dir(path: Path) -> Dataset:
    arrays: dict[str, np.ndarray] = {}
    for key, names in _IDX_FILES.items():
        candidates = [path / f"{name}{ext}" for name in names for ext in ("", ".gz")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError(f"{path}: no {names[0]}[.gz] (MNIST-format IDX directory expected)")
        arrays[key] = read_idx(found)
    x_train, x_test = _scale(arrays["x_train"], arrays["x_test"])
    return _assemble(path.name, x_train, arrays["y_train"], x_test, arrays["y_test"])


def _scale(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to (N, F); integer data over its type's range, anything else min–max on the training split."""
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    if np.issubdtype(x_train.dtype, np.unsignedinteger):
        top = float(np.iinfo(x_train.dtype).max)
        return x_train.astype(np.float32) / top, x_test.astype(np.float32) / top
    return _minmax(x_train.astype(np.float32), x_test.astype(np.float32))


def _minmax(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = x_train.min(axis=0)
    span = x_train.max(axis=0) - low
    span[span == 0] = 1.0  # a constant feature maps to 0 instead of dividing by zero
    return (x_train - low) / span, np.clip((x_test - low) / span, 0.0, 1.0)


def _assemble(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Dataset:
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{name}: train features {x_train.shape[1:]} differ from test features {x_test.shape[1:]}")
    train = Split(torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train.astype(np.int64)))
    test = Split(torch.as_tensor(x_test, dtype=torch.float32), torch.as_tensor(y_test.astype(np.int64)))
    labels = torch.cat([train.y, test.y])
    if bool((labels < 0).any()):
        raise DatasetError(f"{name}: labels must be class indices 0..K-1")
    return Dataset(name, train, test, n_classes=int(labels.max()) + 1)
